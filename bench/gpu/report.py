"""Table and ratios from the result JSONs of one bench call (run_tunesmith.py, harness/run_llamafactory.py,
harness/matmul.py), against the issue's targets.

usage: python report.py RESULTS_DIR [--peak TFLOPS] > summary.md
MFU = 6 * N_total * non-pad tok/s / peak, N_total = 494.0M (blocks + the tied embedding/head counted once),
peak = the measured bf16 8192^3 matmul of the same call (matmul.json), else --peak, else 989.4 (datasheet).
LoRA keeps the 6N convention for comparability (it needs about 4N: no weight gradients for the base).
"""

import argparse
import glob
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "harness"))
import common  # noqa: E402

# (tunesmith run, LLaMA-Factory run, minimum ratio of trained tok/s): the targets
TARGETS = [("tunesmith/full", "llamafactory/neat_packing", 2.5), ("tunesmith/full", "llamafactory/full", 9.0),
           ("tunesmith/lora", "llamafactory/lora", 8.0)]
MFU_TARGET = ("tunesmith/full", 0.45)
# peak memory compared: LF neat_packing (and lora_neat_packing) train the same 8 x 2048 packed rows; LF full and
# lora their own padded batches of 8 examples
MEMORY_PAIRS = [("tunesmith/full", "llamafactory/neat_packing"), ("tunesmith/lora", "llamafactory/lora_neat_packing"),
                ("tunesmith/full", "llamafactory/full"), ("tunesmith/lora", "llamafactory/lora")]


def load(results_dir: str) -> tuple[dict, float | None, dict]:
    runs, peak, versions = {}, None, {}
    for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        data = json.load(open(path))
        if "peak_tflops_measured" in data:
            peak = data["peak_tflops_measured"]
        elif "meter" in data and (data["meter"] or {}).get("window"):
            runs[f"{data['framework']}/{data['variant']}"] = data
            versions[data["framework"]] = data.get("versions", {})
    return runs, peak, versions


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--peak", type=float, default=None)
    a = ap.parse_args()
    runs, measured, versions = load(a.dir)
    peak = a.peak or measured or 989.4
    n_total = common.param_counts()["total"]

    def mfu(run):
        return 6 * n_total * run["meter"]["window"]["tok_s_real"] / (peak * 1e12)

    print(f"MFU peak: {peak} TFLOP/s ({'measured bf16 8192^3 in this call' if measured and not a.peak else 'given'}); "
          f"N_total = {n_total:,}\n")
    print("| run | trained tok/s | non-pad tok/s | total tok/s | pad | s/step | steps | MFU | peak alloc / reserved GiB "
          "| loss @ step | attention |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for name, run in sorted(runs.items()):
        m, w = run["meter"], run["meter"]["window"]
        print(f"| {name} | {w['tok_s_trained']:,.0f} | {w['tok_s_real']:,.0f} | {w['tok_s_total']:,.0f} | "
              f"{w['padding_fraction']:.1%} | {w['s_per_step']:.3f} | {w['steps']} | {mfu(run):.1%} | "
              f"{m.get('peak_mem_allocated_gib')} / {m.get('peak_mem_reserved_gib')} | "
              f"{(m.get('final_loss') or 0):.3f} @ {m.get('steps_total')} | {m.get('attn_implementation')} |")
    print("\n| target | measured | goal | met |\n|---|---:|---:|---|")
    for ours, theirs, goal in TARGETS:
        if ours in runs and theirs in runs:
            ratio = runs[ours]["meter"]["window"]["tok_s_trained"] / runs[theirs]["meter"]["window"]["tok_s_trained"]
            print(f"| {ours} / {theirs} trained tok/s | {ratio:.2f}x | >= {goal}x | {'yes' if ratio >= goal else 'no'} |")
    name, goal = MFU_TARGET
    if name in runs:
        value = mfu(runs[name])
        print(f"| {name} MFU | {value:.1%} | >= {goal:.0%} | {'yes' if value >= goal else 'no'} |")
    for ours, theirs in MEMORY_PAIRS:
        if ours in runs and theirs in runs:
            mine, other = (runs[r]["meter"].get("peak_mem_allocated_gib") for r in (ours, theirs))
            if mine is not None and other is not None:
                print(f"| {ours} / {theirs} peak allocated | {mine} / {other} GiB | <= | "
                      f"{'yes' if mine <= other else 'no'} |")
    print()
    for framework, v in sorted(versions.items()):
        keys = ("torch", "transformers", "peft", "accelerate", "datasets", "llamafactory", "tokenizers")
        print(f"- {framework}: " + ", ".join(f"{k} {v.get(k)}" for k in keys if v.get(k)))


if __name__ == "__main__":
    main()
