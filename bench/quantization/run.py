"""LoRA vs QLoRA (bitsandbytes 4-bit nf4, 8-bit; hqq 4-bit) on the same model, data and batch: peak memory, step
time and the loss after N steps. Each arm trains in a fresh process (`--arm NAME` runs one and prints JSON).

Memory is measured two ways, both on the CPU: the weights the model holds (bytes of every parameter and buffer
after the method is applied: what quantization shrinks) and the process's peak resident set size
(getrusage ru_maxrss: weights + activations + optimizer state + the Python/torch runtime, which is the same
~0.5 GB for every arm). On a CUDA machine the script also reports torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE.parents[0] / "work" / "quantization"
ARMS = {
    "lora": {},
    "qlora-4bit (bnb nf4, double quant)": {"quantization_bit": 4},
    "qlora-8bit (bnb LLM.int8)": {"quantization_bit": 8},
    "qlora-4bit (hqq)": {"quantization_bit": 4, "quantization_method": "hqq"},
}
MODEL = dict(vocab_size=2048, hidden_size=384, num_layers=6, num_heads=6, num_kv_heads=2, intermediate_size=1024)


def prepare() -> tuple[Path, Path]:
    import random

    from tunesmith.model.tiny import build_tiny_model

    WORK.mkdir(parents=True, exist_ok=True)
    data = WORK / "data"
    data.mkdir(exist_ok=True)
    rng = random.Random(0)
    words = "alpha beta gamma delta red green blue seven eleven river stone cloud quiet bright".split()
    rows = []
    for i in range(400):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        text = " ".join(rng.choice(words) for _ in range(rng.randint(20, 60)))
        rows.append({"instruction": f"Add {a} and {b}, then repeat: {text}", "input": "",
                     "output": f"{a} + {b} = {a + b}. {text}"})
    (data / "sums.json").write_text(json.dumps(rows))
    (data / "dataset_info.json").write_text(json.dumps({"sums": {"file_name": "sums.json"}}))
    model = WORK / "model"
    if not (model / "config.json").exists():
        build_tiny_model(model, "qwen2", seed=0, extra_corpus=tuple(r["output"] for r in rows), **MODEL)
    return model, data


def run_arm(name: str, steps: int, batch: int) -> dict:
    import torch
    from transformers import TrainerCallback

    from tunesmith.config.load import build_config
    from tunesmith.train.callbacks.log_file import read_log
    from tunesmith.train.run import run_training

    model, data = prepare()
    times: list[float] = []
    cpu: list[float] = []
    held: dict = {}

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.t, self.c = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, model=None, **kwargs):
            times.append(time.perf_counter() - self.t)
            cpu.append(time.process_time() - self.c)

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            held["weights"] = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
            held["trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)

    raw = {"model_name_or_path": str(model), "stage": "sft", "finetuning_type": "lora", "dataset": "sums",
           "dataset_dir": str(data), "template": "qwen3_nothink", "cutoff_len": 128,
           "output_dir": str(WORK / "runs" / name.split()[0]), "overwrite_output_dir": True,
           "per_device_train_batch_size": batch, "learning_rate": 2e-4, "max_steps": steps, "logging_steps": 1,
           "save_strategy": "no", "report_to": "none", "seed": 0, "disable_tqdm": True, "lora_rank": 16,
           "lora_target": "all", "lr_scheduler_type": "constant", "disable_shuffling": True, "bf16": True,
           **ARMS[name]}
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    result = run_training(build_config({k: (v, "bench") for k, v in raw.items()}), extra_callbacks=[Clock()])
    losses = [r["loss"] for r in read_log(result.output_dir) if "loss" in r]
    out = {"arm": name, "steps": steps, "batch": batch, "weights_mb": held["weights"] / 2**20,
           "trainable": held["trainable"], "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "step_s": statistics.median(times[2:] or times), "step_cpu_s": statistics.median(cpu[2:] or cpu),
           "first_loss": losses[0],
           "last_loss": statistics.mean(losses[-3:])}
    if torch.cuda.is_available():
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arm")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--no-results", action="store_true")
    args = parser.parse_args()
    if args.arm:
        print("RESULT " + json.dumps(run_arm(args.arm, args.steps, args.batch)), flush=True)
        return
    prepare()
    rows = []
    for arm in ARMS:
        proc = subprocess.run([sys.executable, __file__, "--arm", arm, "--steps", str(args.steps), "--batch",
                               str(args.batch)], capture_output=True, text=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"arm {arm} failed")
        rows.append(json.loads(line[7:]))
        print(rows[-1], flush=True)
    table = render(rows, args)
    print(table)
    if not args.no_results:
        (HERE / "results.md").write_text(table)


def render(rows: list[dict], args) -> str:
    import torch

    base = rows[0]
    cuda = "cuda_peak_mb" in base
    head = ("| arm | weights held (MB) | peak RSS (MB) |" + (" CUDA peak (MB) |" if cuda else "") +
            " median step, wall (s) | median step, CPU time (s) | loss at step 1 | mean loss, last 3 steps | vs LoRA |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(f"| {r['arm']} | {r['weights_mb']:.1f} | {r['peak_rss_mb']:.0f} |" +
                     (f" {r['cuda_peak_mb']:.0f} |" if cuda else "") +
                     f" {r['step_s']:.3f} | {r['step_cpu_s']:.3f} | {r['first_loss']:.3f} | {r['last_loss']:.3f} |"
                     f" {r['last_loss'] - base['last_loss']:+.3f} |")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    return (f"# LoRA vs QLoRA\n\n{time.strftime('%Y-%m-%d')}, {device}, {platform.python_version()}, torch "
            f"{torch.__version__}. Model: qwen2-shaped, {MODEL}; {args.steps} steps of batch {args.batch} "
            "(cutoff 128), LoRA rank 16 on every linear layer, lr 2e-4 constant, seed 0, same data order "
            "(`disable_shuffling`). Each arm in a fresh process. CPU time is the process's own (user + system) "
            "per step: on a machine shared with other jobs it is steadier than wall time.\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
