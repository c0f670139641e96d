"""sft batching layouts on the CPU: trained tokens per second of tunesmith's padding-free default, packed rows
(`packing: true`) and padded rows (`packing: false`), on the same model, data and seed, in one run.

usage: python bench/batching/run.py [--steps 40] [--hidden 256] [--layers 4] [--out bench/batching/results.md]

A tiny Qwen2-style model (tunesmith's offline builder) and 2,000 synthetic alpaca examples of varied length
(prompts 20-300, replies 10-400 tokens) in bench/work/batching/. Each layout trains `--steps` optimizer steps
of per_device_train_batch_size 8 (rows for packed, examples otherwise) in a fresh process; the first 5 steps
are warm-up and not timed. Trained tokens are counted on every batch the collator builds (labels that are
trained), time between the end of step 5 and the last step.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE.parents[0] / "work" / "batching"
LAYOUTS = {"padding-free (default)": {}, "packed (packing: true)": {"packing": True},
           "padded (packing: false)": {"packing": False},
           "padding-free, flash_attn: sdpa": {"flash_attn": "sdpa"},
           "padding-free, flash_attn: varlen": {"flash_attn": "varlen"}}


def make_assets(hidden: int, layers: int) -> tuple[Path, Path]:
    from tunesmith.model.tiny import build_tiny_model

    data = WORK / "data"
    data.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    words = ["tune", "string", "note", "rises", "falls", "rest", "chord", "scale", "bar", "beat", "音", "调"]
    text = lambda n: " ".join(rng.choice(words) for _ in range(n))  # noqa: E731
    rows = [{"instruction": text(rng.randint(20, 300)), "input": "", "output": text(rng.randint(10, 400))}
            for _ in range(2000)]
    (data / "synth.json").write_text(json.dumps(rows), encoding="utf-8")
    (data / "dataset_info.json").write_text(json.dumps({"synth": {"file_name": "synth.json"}}), encoding="utf-8")
    model = WORK / f"model-{hidden}x{layers}"
    if not (model / "config.json").exists():
        build_tiny_model(model, "qwen2", vocab_size=2048, hidden_size=hidden, num_layers=layers,
                         num_heads=max(hidden // 64, 1), num_kv_heads=max(hidden // 128, 1),
                         intermediate_size=hidden * 3, seed=0, extra_corpus=tuple(words))
    return model, data


def run_one(model: str, data: str, steps: int, overrides: dict) -> dict:
    """In this process: train and measure (called in a fresh subprocess per layout)."""
    from transformers import TrainerCallback

    from tunesmith.config.load import build_config
    from tunesmith.data import collate
    from tunesmith.train.run import run_training

    counted = {"tokens": 0, "padded": 0, "real": 0}
    original = collate.Collator.__call__

    def counting(self, items):
        batch = original(self, items)
        counted["tokens"] += int((batch["labels"] != -100).sum())
        counted["padded"] += batch["input_ids"].numel()
        counted["real"] += sum(len(item["input_ids"]) for item in items)
        return batch

    collate.Collator.__call__ = counting

    class Clock(TrainerCallback):
        marks: dict = {}

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 5:
                self.marks["start"], self.marks["tokens0"] = time.perf_counter(), counted["tokens"]
                self.marks["padded0"], self.marks["real0"] = counted["padded"], counted["real"]
            self.marks["end"], self.marks["tokens1"], self.marks["padded1"], self.marks["real1"] = (
                time.perf_counter(), counted["tokens"], counted["padded"], counted["real"])

    raw = dict(model_name_or_path=model, stage="sft", do_train=True, finetuning_type="full", dataset="synth",
               dataset_dir=data, template="qwen3_nothink", cutoff_len=1024, output_dir=str(WORK / "out"),
               overwrite_output_dir=True, per_device_train_batch_size=8, learning_rate=1e-4, max_steps=steps,
               logging_steps=10, save_strategy="no", report_to="none", seed=0, disable_tqdm=True,
               dataloader_num_workers=0, **overrides)
    clock = Clock()
    run_training(build_config({k: (v, "bench") for k, v in raw.items()}), extra_callbacks=[clock])
    m = clock.marks
    seconds = m["end"] - m["start"]
    return {"seconds": seconds, "trained_tok_s": (m["tokens1"] - m["tokens0"]) / seconds,
            "pad_share": 1 - (m["real1"] - m["real0"]) / max(m["padded1"] - m["padded0"], 1),
            "s_per_step": seconds / (steps - 5)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--out", default=str(HERE / "results.md"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        spec = json.loads(args.one)
        print(json.dumps(run_one(spec["model"], spec["data"], args.steps, spec["overrides"])))
        return
    model, data = make_assets(args.hidden, args.layers)
    results = {}
    for name, overrides in LAYOUTS.items():
        spec = json.dumps({"model": str(model), "data": str(data), "overrides": overrides})
        out = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--one", spec],
                             capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if out.returncode:
            sys.exit(out.stderr[-3000:])
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(name, results[name], flush=True)
    base = results["packed (packing: true)"]["trained_tok_s"]
    lines = [f"# sft batching layouts on the CPU ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)", "",
             f"Model: tiny qwen2, hidden {args.hidden}, {args.layers} layers, vocab 2048; 2,000 synthetic alpaca "
             f"examples; batch 8, cutoff 1024, {args.steps} steps (5 warm-up, not timed); float32.", "",
             "| layout | trained tok/s | vs packed | padding | s/step |", "|---|---:|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['trained_tok_s']:,.0f} | {r['trained_tok_s'] / base:.2f}x | "
                     f"{100 * r['pad_share']:.1f}% | {r['s_per_step']:.3f} |")
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
