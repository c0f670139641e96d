"""One prediction run in this process, timed: LLaMA-Factory's `do_predict` (tuner.run_exp) or tunesmith's
(`tunesmith train` with do_predict), from the same YAML. Writes the run's predict_results.json metrics, the
generated-token count (each prediction re-encoded with the model's tokenizer, the same count for both
frameworks) and the predictions.

    python time_predict.py {tunesmith,llamafactory} CONFIG.yaml --out RESULT.json [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("framework", choices=("tunesmith", "llamafactory"))
    parser.add_argument("config")
    parser.add_argument("--out", required=True)
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
    cfg = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    cfg.update({k: yaml.safe_load(v) for k, v in extra.items()})
    start = time.perf_counter()
    if args.framework == "tunesmith":
        from tunesmith.config.load import load_config
        from tunesmith.evaluation.run import run
        from tunesmith.utils.logging import offline_environment, setup_logging

        offline_environment()
        setup_logging()
        run(load_config([args.config] + [f"{k}={v}" for k, v in extra.items()]))
    else:
        from llamafactory.train import tuner

        tuner.run_exp(args=cfg)
    total = time.perf_counter() - start
    out = Path(cfg["output_dir"])
    metrics = json.loads((out / "predict_results.json").read_text())
    rows = [json.loads(line) for line in (out / "generated_predictions.jsonl").read_text().splitlines()]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(cfg["model_name_or_path"])
    tokens = sum(len(tok.encode(r["predict"], add_special_tokens=False)) for r in rows)
    result = {"framework": args.framework, "batch": cfg.get("per_device_eval_batch_size", 8),
              "examples": len(rows), "predict_runtime": metrics["predict_runtime"], "process_s": round(total, 2),
              "tokens": tokens, "tokens_per_s": round(tokens / metrics["predict_runtime"], 2),
              "metrics": metrics, "predictions": [r["predict"] for r in rows], "labels": [r["label"] for r in rows]}
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
