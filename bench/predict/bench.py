"""Run every case in a fresh process (time_predict.py), print the table and write results.md."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_case(python: str, framework: str, config: Path, batch: int, out_dir: Path) -> dict:
    result = out_dir / f"{framework}-b{batch}.json"
    cmd = [python, str(HERE / "time_predict.py"), framework, str(config), "--out", str(result),
           "--set", f"per_device_eval_batch_size={batch}", "--set", f"output_dir={out_dir / f'{framework}-b{batch}'}"]
    print("[bench]", " ".join(cmd[1:3]), f"batch {batch}", flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "HF_HUB_OFFLINE": "1", "DISABLE_VERSION_CHECK": "1"})
    return json.loads(result.read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--ts-python", required=True)
    parser.add_argument("--lf-python", required=True)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--no-results", action="store_true")
    args = parser.parse_args()
    work = Path(args.work)
    batches = [int(b) for b in args.batches.split(",")]
    import yaml

    cfg = yaml.safe_load(Path(args.config).read_text())
    load_before = f"{os.getloadavg()[0]:.1f}"
    runs = {}
    for batch in batches:
        for framework, python in (("llamafactory", args.lf_python), ("tunesmith", args.ts_python)):
            runs[(framework, batch)] = run_case(python, framework, Path(args.config), batch, work)
    lines = ["| framework | batch | examples | generated tokens | predict runtime (s) | tokens/s | vs LLaMA-Factory "
             "batch 1 | same batch | greedy replies equal to LLaMA-Factory's |", "|---|---|---|---|---|---|---|---|---|"]
    base = runs[("llamafactory", batches[0])]["tokens_per_s"]
    for (framework, batch), r in runs.items():
        same = runs[("llamafactory", batch)]
        equal = sum(a == b for a, b in zip(r["predictions"], same["predictions"]))
        lines.append(f"| {framework} | {batch} | {r['examples']} | {r['tokens']} | {r['predict_runtime']:.2f} | "
                     f"{r['tokens_per_s']:.1f} | {r['tokens_per_s'] / base:.2f}x | "
                     f"{r['tokens_per_s'] / same['tokens_per_s']:.2f}x | {equal}/{r['examples']} |")
    table = "\n".join(lines)
    print(table)
    if args.no_results:
        return
    import torch

    header = (f"# predict throughput, tunesmith vs LLaMA-Factory 0.9.5\n\n{datetime.date.today()}, {platform.machine()}, "
              f"{os.cpu_count()} CPU cores, python {platform.python_version()}, torch {torch.__version__}; "
              f"config `bench/predict/predict.yaml` (greedy, max_new_tokens {cfg['max_new_tokens']}), "
              f"{runs[('tunesmith', batches[0])]['examples']} examples; tokens = each prediction re-encoded with the "
              "model's tokenizer (the same count for both); load average before / after: "
              f"{load_before} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.\n\n")
    (HERE / "results.md").write_text(header + table + "\n", encoding="utf-8")
    print(f"written {HERE / 'results.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
