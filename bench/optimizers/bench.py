"""Peak memory and step time of the optimizer families on the same full fine-tune (CPU, float32).

Each optimizer runs in a fresh process (`python bench.py ONE <name>`): a random Qwen2-style model (no weights to
download), the optimizer tunesmith builds for the config keys (train/optimizers), STEPS optimizer steps on fixed
random token batches, gradient clipping off. Reported per optimizer:
- state MiB: the optimizer's own tensors after the last step (Adam moments, projections, momentum buffers, BAdam's
  float32 copy of the active block), counted exactly from the tensors;
- gradients held MiB: the gradients alive once backward ends (layer-wise steps drop each as it is made; BAdam
  computes only the active block's), counted exactly;
- peak RSS over model MiB: the process's peak resident memory (ru_maxrss) minus its resident memory once the
  model is built, i.e. what training adds on top of the weights: gradients, activations, optimizer state,
  temporaries (RSS counts pages the allocator keeps, so it is an upper bound on live tensors);
- step s: median wall time of an optimizer step (forward, backward, update) after the first, which also
  builds state (GaLore's first SVD).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace

STEPS = int(os.environ.get("STEPS", "6"))
SHAPE = dict(vocab_size=8000, hidden_size=384, num_hidden_layers=6, num_attention_heads=6, num_key_value_heads=6,
             intermediate_size=1024, tie_word_embeddings=False)
BATCH, LENGTH = 2, 128
OPTIMIZERS = {  # name -> finetuning keys (LLaMA-Factory's), all with `optim: adamw_torch`
    "AdamW": {},
    "GaLore r64": {"use_galore": True, "galore_rank": 64},
    "GaLore r64 layer-wise": {"use_galore": True, "galore_rank": 64, "galore_layerwise": True},
    "APOLLO r64": {"use_apollo": True, "apollo_rank": 64},
    "APOLLO r64 layer-wise": {"use_apollo": True, "apollo_rank": 64, "apollo_layerwise": True},
    "BAdam layer": {"use_badam": True, "badam_switch_interval": 50},
    "BAdam ratio 0.05": {"use_badam": True, "badam_mode": "ratio"},
    "Adam-mini": {"use_adam_mini": True},
    "Muon": {"use_muon": True},
}


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def tensor_bytes(obj, seen: set) -> int:
    import torch

    if isinstance(obj, torch.Tensor):
        if obj.data_ptr() in seen:
            return 0
        seen.add(obj.data_ptr())
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v, seen) for v in obj)
    return 0


def grad_bytes(grad) -> int:
    """Bytes of a gradient; BAdam's ratio mode makes them sparse (values and indices)."""
    if grad.is_sparse:
        grad = grad.coalesce()
        return grad.values().numel() * grad.element_size() + grad.indices().numel() * 8
    return grad.numel() * grad.element_size()


def state_bytes(optimizer, model) -> int:
    from tunesmith.train.optimizers.chained import ChainedOptimizer
    from tunesmith.train.optimizers.layerwise import LayerwiseOptimizer

    seen = {p.data_ptr() for p in model.parameters()}  # weights are not optimizer state
    if isinstance(optimizer, LayerwiseOptimizer):
        return sum(tensor_bytes(dict(o.state), seen) for o in optimizer.optimizers.values())
    if isinstance(optimizer, ChainedOptimizer):
        return sum(tensor_bytes(dict(o.state), seen) for o in optimizer.optimizers)
    total = tensor_bytes(dict(optimizer.state), seen)
    for inner in ("base_optimizer",):  # BAdam's BlockOptimizer: Adam state and the float32 block copy
        if inner in vars(optimizer):
            base = vars(optimizer)[inner]
            total += tensor_bytes(dict(base.state), seen)
            total += tensor_bytes([g["params"] for g in base.param_groups], seen)
    return total


def one(name: str) -> dict:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM, TrainingArguments

    from tunesmith.config.schema import FinetuningArgs
    from tunesmith.train.optimizers import build_optimizer
    from tunesmith.train.optimizers.layerwise import LayerwiseOptimizer

    torch.manual_seed(0)
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    model = Qwen2ForCausalLM(Qwen2Config(**SHAPE)).float()
    model.train()
    batches = [torch.randint(0, SHAPE["vocab_size"], (BATCH, LENGTH), generator=torch.Generator().manual_seed(i))
               for i in range(STEPS)]
    base = rss_mib()
    args = TrainingArguments(output_dir="/tmp/bench-optimizers", learning_rate=1e-5, weight_decay=0.01,
                             optim="adamw_torch", report_to="none", max_grad_norm=0)
    ft = replace(FinetuningArgs(finetuning_type="full"), **OPTIMIZERS[name])
    optimizer = build_optimizer(model, args, ft) or torch.optim.AdamW(
        model.parameters(), lr=1e-5, weight_decay=0.01)
    layerwise = isinstance(optimizer, LayerwiseOptimizer)
    if layerwise:
        optimizer.attach()
    times, losses, grads = [], [], 0
    for ids in batches:
        start = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        grads = max(grads, sum(grad_bytes(p.grad) for p in model.parameters() if p.grad is not None))
        if not layerwise:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
        losses.append(loss.item())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"name": name, "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
            "weights_MiB": sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20,
            "state_MiB": state_bytes(optimizer, model) / 2**20, "grads_MiB": grads / 2**20, "peak_over_model_MiB": peak - base,
            "step_s": statistics.median(times[1:]), "first_step_s": times[0], "loss_first": losses[0],
            "loss_last": losses[-1]}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "ONE":
        print(json.dumps(one(sys.argv[2])))
        return
    rows = []
    for name in OPTIMIZERS:
        out = subprocess.run([sys.executable, __file__, "ONE", name], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], file=sys.stderr)
    import platform

    import torch

    first = rows[0]
    lines = [f"Full fine-tune of a random Qwen2-style model, {first['params_M']:.1f}M parameters "
             f"({first['weights_MiB']:.0f} MiB float32: hidden {SHAPE['hidden_size']}, {SHAPE['num_hidden_layers']} "
             f"layers, vocabulary {SHAPE['vocab_size']}, untied head), batch {BATCH} x {LENGTH} tokens, {STEPS} "
             f"steps, CPU float32, torch {torch.__version__}, {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
             f"{time.strftime('%Y-%m-%d')}.", "",
             "| optimizer | state MiB | vs AdamW | gradients held MiB | weights + gradients + state MiB | "
             "peak RSS over model MiB | step s (median) | first step s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    adamw = first["state_MiB"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['state_MiB']:.0f} | {r['state_MiB'] / adamw:.2f} | {r['grads_MiB']:.0f} | "
                     f"{r['weights_MiB'] + r['grads_MiB'] + r['state_MiB']:.0f} | {r['peak_over_model_MiB']:.0f} | "
                     f"{r['step_s']:.2f} | {r['first_step_s']:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.md"), "w") as f:
        f.write("# Optimizer memory and step time (bench/optimizers)\n\n" + text)


if __name__ == "__main__":
    main()
