"""GRPO side by side: tunesmith's stage grpo vs TRL's GRPOTrainer on the same tiny sft model, prompts,
reward function, sampling, group size and steps. Every run is a fresh process (run_one.py), the two sides
alternate, medians are reported. Writes results.md next to this file.

    .venv/bin/python bench/grpo/bench.py [--reps 3] [--work bench/work/grpo]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402


def setup(work: Path) -> None:
    """A tiny Qwen2-shaped model, trained briefly with tunesmith's sft on the arithmetic rows, and the rendered
    prompts TRL is given (tunesmith's template, so both sides sample from the same token ids)."""
    from tunesmith.config.load import build_config
    from tunesmith.model.tiny import build_tiny_model
    from tunesmith.train.run import run_training

    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    rows = common.arithmetic_rows()
    (data / "arith.json").write_text(json.dumps(rows))
    (data / "dataset_info.json").write_text(json.dumps({"arith": {"file_name": "arith.json"}}))
    if not (work / "sft" / "tunesmith.json").is_file():
        build_tiny_model(work / "base", "qwen2", vocab_size=512, hidden_size=64, num_layers=4, num_heads=4,
                         num_kv_heads=2, intermediate_size=128, seed=0,
                         extra_corpus=tuple(json.dumps(r) for r in rows))
        raw = {"model_name_or_path": str(work / "base"), "stage": "sft", "do_train": True,
               "finetuning_type": "full", "dataset": "arith", "dataset_dir": str(data), "template": "qwen3_nothink",
               "cutoff_len": 128, "output_dir": str(work / "sft"), "overwrite_output_dir": True,
               "per_device_train_batch_size": 8, "learning_rate": 3e-3, "max_steps": 40, "logging_steps": 10,
               "save_strategy": "no", "report_to": "none", "seed": 0, "disable_tqdm": True}
        run_training(build_config({k: (v, "bench") for k, v in raw.items()}))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(work / "sft")
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": r["instruction"]}], tokenize=False,
                                             add_generation_prompt=True) for r in rows]
    (work / "prompts.json").write_text(json.dumps(prompts))


def run(side: str, work: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run([sys.executable, str(HERE / "run_one.py"), side, str(work)], capture_output=True,
                          text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{side} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def versions() -> str:
    import torch
    import transformers
    import trl

    return f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--work", default=str(HERE.parent / "work" / "grpo"))
    args = parser.parse_args()
    work = Path(args.work)
    setup(work)
    results: dict[str, list[dict]] = {"tunesmith": [], "trl": []}
    for rep in range(args.reps):
        for side in ("tunesmith", "trl"):
            out = run(side, work)
            results[side].append(out)
            print(f"[bench] rep {rep + 1} {side}: train {out['train_s']:.1f}s, mean reward first 5 "
                  f"{statistics.mean(out['rewards'][:5]):.2f}, last 10 {statistics.mean(out['rewards'][-10:]):.2f}",
                  flush=True)
    (work / "results.json").write_text(json.dumps(results))
    write_table(results, args.reps)


def write_table(results: dict, reps: int) -> None:
    rows = []
    for side, runs in results.items():
        train = statistics.median(r["train_s"] for r in runs)
        step = statistics.median(statistics.median(r["step_s"][2:]) for r in runs)
        early = statistics.median(statistics.mean(r["rewards"][:5]) for r in runs)
        late = statistics.median(statistics.mean(r["rewards"][-10:]) for r in runs)
        curve = [statistics.median(r["rewards"][i] for r in runs) for i in range(common.STEPS)]
        rows.append((side, train, step, early, late, curve, [round(r["train_s"], 1) for r in runs]))
    ts, tr = rows
    text = [
        "# GRPO: tunesmith vs TRL's GRPOTrainer", "",
        "Written by `.venv/bin/python bench/grpo/bench.py` (see bench/README.md).", "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}; float32 "
        f"on the CPU; {versions()}",
        "- model: tiny Qwen2 (vocab 512, hidden 64, 4 layers), trained 40 steps with tunesmith sft on 64 "
        "`What is a+b?` -> `a+b=c` rows; both sides load that checkpoint",
        f"- GRPO: {common.STEPS} optimizer steps of 1 prompt x {common.GROUP} completions (batch {common.BATCH}), "
        f"max {common.MAX_COMPLETION} new tokens, temperature 1, top_p 1, top_k 0, lr {common.LR} constant, "
        "beta 0, loss_type dapo, scale_rewards group, full fine-tuning; reward: the number of `1` digits in the "
        "completion (the same Python function on both sides); TRL gets tunesmith's rendered prompts as text",
        f"- medians of {reps} runs per side, each a fresh process, the sides alternating; timed: the training loop "
        "(on_train_begin to on_train_end: generation, rewards, forward/backward, optimizer)", "",
        "| side | train s | step s (3rd on) | speed vs TRL | mean reward steps 1-5 | mean reward last 10 | runs (train s) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for side, train, step, early, late, _, runs in rows:
        text.append(f"| {side} | {train:.2f} | {step:.3f} | {tr[1] / train:.2f}x | {early:.2f} | {late:.2f} | "
                    f"{', '.join(map(str, runs))} |")
    text += ["", "Reward per step (median over runs):", ""]
    for side, *_, curve, _ in rows:
        text.append(f"- {side}: " + " ".join(f"{v:.2f}" for v in curve))
    text += ["", "<!-- reading: written by hand -->"]
    out = HERE / "results.md"
    old = out.read_text() if out.is_file() else ""
    marker = "<!-- reading: written by hand -->"
    tail = old.split(marker, 1)[1] if marker in old else "\n"
    out.write_text("\n".join(text) + tail)
    print("\n".join(text))


if __name__ == "__main__":
    main()
