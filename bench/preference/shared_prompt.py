"""Shared-prompt rows vs separate rows (today's layout) vs LLaMA-Factory 0.9.5, for dpo-lora and rm-lora, on
the preference benchmark's data, model and config (bench.py's write_config), in one invocation: the three
variants alternate, every run a fresh process (time_train.py), medians reported. No CPU-quiet gate: on a busy
machine read the ratios, not the absolute seconds.

    bash bench/preference/shared_prompt.sh      # builds the data and model as run.sh does, then runs this
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench  # noqa: E402  (write_config, the preprocess helpers)

VARIANTS = {  # name -> (framework, extra --set keys)
    "tunesmith shared": ("tunesmith", []),
    "tunesmith separate": ("tunesmith", ["--set", "shared_prompt=false"]),
    "LLaMA-Factory": ("llamafactory", ["--set", "disable_gradient_checkpointing=true"]),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--lf-python", required=True)
    parser.add_argument("--cases", nargs="+", default=["dpo-lora", "rm-lora"])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--cutoff-len", type=int, default=512)
    args = parser.parse_args()
    args.lr = {"lora": 1e-4, "full": 1e-5}
    work = args.work.resolve()
    (work / "shared").mkdir(parents=True, exist_ok=True)
    template = bench.pre.pick_template(args.lf_python)
    env = {"TUNESMITH_CACHE_DIR": str(work / "ts_cache"), "HF_DATASETS_CACHE": str(work / "hf_cache"),
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    results: dict = {}
    for case in args.cases:
        stage, ft = bench.CASES[case]
        cfg = work / "shared" / f"{case}.yaml"
        bench.write_config(cfg, args.root.resolve(), args.model.resolve(), template, stage, ft, args,
                           work / "shared" / "out" / case)
        results[case] = {name: [] for name in VARIANTS}
        for rep in range(args.reps):
            for name, (framework, extra) in VARIANTS.items():
                python = sys.executable if framework == "tunesmith" else args.lf_python
                out = work / "shared" / f"{case}_{name.replace(' ', '_')}_{rep}.json"
                out.unlink(missing_ok=True)
                log = out.with_suffix(".log")
                with log.open("w") as fh:
                    subprocess.run([python, str(HERE / "time_train.py"), framework, str(cfg), f"--out={out}",
                                    *extra], stdout=fh, stderr=subprocess.STDOUT,
                                   env={**bench.os.environ, **env})
                if not out.exists():
                    sys.exit(f"{case} {name} failed; see {log}")
                r = json.loads(out.read_text())
                results[case][name].append(r)
                print(f"[shared] {case} {name} rep {rep + 1}: train {r['train_s']:.2f}s, loss {r['first_loss']:.4f}"
                      f" -> {r['last_loss']:.4f}", flush=True)
    (work / "shared" / "results.json").write_text(json.dumps(results, indent=1))
    write(results, args)


def write(results: dict, args) -> None:
    lines = ["# Shared-prompt rows: dpo / rm, tunesmith shared vs separate rows vs LLaMA-Factory 0.9.5", "",
             "Written by `bash bench/preference/shared_prompt.sh` (see bench/README.md).", "",
             f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {bench.NPROC} CPUs; float32 on the CPU",
             "- data, model and config: the preference benchmark's (240 synthetic pairs, tiny Qwen2 vocab 4096 / "
             f"hidden 256 / 6 layers, {args.max_steps} steps of {args.batch} pairs, lora rank 8, "
             "`disable_shuffling: true`); `tunesmith separate` sets `shared_prompt: false` (today's 2B-row layout)",
             f"- medians of {args.reps} runs per variant, variants alternating, each a fresh process; timed: "
             "`Trainer.train()`. No quiet-CPU gate: other processes shared the 2 cores, so absolute seconds are "
             "noisy; the ratios come from interleaved runs", "",
             "| case | variant | train s (median) | vs LLaMA-Factory | vs separate rows | loss step 1 | loss last | "
             "max abs loss diff vs separate | runs (train s) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for case, variants in results.items():
        med = {name: statistics.median(r["train_s"] for r in runs) for name, runs in variants.items()}
        separate = variants["tunesmith separate"][0]["losses"]
        for name, runs in variants.items():
            diff = max(abs(a - b) for a, b in zip(runs[0]["losses"], separate))
            lines.append(f"| {case} | {name} | {med[name]:.2f} | {med['LLaMA-Factory'] / med[name]:.2f}x | "
                         f"{med['tunesmith separate'] / med[name]:.2f}x | {runs[0]['first_loss']:.4f} | "
                         f"{runs[0]['last_loss']:.4f} | {diff:.2e} | "
                         f"{', '.join('%.1f' % r['train_s'] for r in runs)} |")
    out = HERE / "results_shared_prompt.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
