"""The loss path alone: the standard causal-LM loss (full-vocabulary logits, float32 cross-entropy) against
tunesmith's chunked loss (train/chunked_loss.py), forward + backward, on the benchmark's head shape.

usage: python loss_path.py [--tokens 16384] [--trained 0.67] [--hidden 896] [--vocab 151936] [--reps 5]
Prints the median time and the peak memory of each (CUDA: allocator peak; CPU: peak RSS growth, one process per
path), and checks both give the same loss and gradients. Runs on a CPU too (use --tokens 2048 there).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src"))


def run(path: str, a) -> dict:
    import torch
    import torch.nn.functional as F

    from tunesmith.train.chunked_loss import chunked_linear_cross_entropy

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    hidden = torch.randn(a.tokens, a.hidden, device=dev, requires_grad=True)
    weight = (torch.randn(a.vocab, a.hidden, device=dev) * 0.02).requires_grad_()
    labels = torch.randint(0, a.vocab, (a.tokens,), device=dev)
    labels[torch.rand(a.tokens, device=dev) > a.trained] = -100
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32
    trained = (labels != -100).nonzero().squeeze(1)

    def standard():
        with torch.autocast(dev, dtype=dtype, enabled=dev == "cuda"):
            logits = F.linear(hidden, weight)
        return F.cross_entropy(logits.float(), labels, ignore_index=-100)

    def chunked():
        loss, _, _ = chunked_linear_cross_entropy(hidden.index_select(0, trained), weight, labels[trained],
                                                  1 / trained.numel(), compute_dtype=dtype)
        return loss

    fn = standard if path == "standard" else chunked
    times, loss = [], None
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(a.reps + 1):
        hidden.grad = weight.grad = None
        if dev == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        loss = fn()
        loss.backward()
        if dev == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    peak = (torch.cuda.max_memory_allocated() / 2**30 if dev == "cuda"
            else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 2**20)
    return {"path": path, "device": dev, "median_s": statistics.median(times[1:]), "peak_gib": round(peak, 2),
            "loss": loss.item(), "grad_hidden_norm": hidden.grad.norm().item(),
            "grad_weight_norm": weight.grad.norm().item()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--trained", type=float, default=0.67)
    ap.add_argument("--hidden", type=int, default=896)
    ap.add_argument("--vocab", type=int, default=151936)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--path", choices=["standard", "chunked"], default=None)
    a = ap.parse_args()
    if a.path:  # one path in this process (clean peak memory)
        print(json.dumps(run(a.path, a)))
        return
    results = []
    for path in ("standard", "chunked"):
        cmd = [sys.executable, __file__, "--path", path] + [f"--{k}={v}" for k, v in vars(a).items()
                                                            if k != "path" and v is not None]
        results.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
    std, chk = results
    print(f"loss path, {a.tokens} tokens ({a.trained:.0%} trained), hidden {a.hidden}, vocab {a.vocab}, "
          f"{std['device']}")
    print("| path | forward+backward s | peak memory GiB |\n|---|---:|---:|")
    for r in results:
        print(f"| {r['path']} | {r['median_s']:.4f} | {r['peak_gib']} |")
    print(f"speed-up {std['median_s'] / chk['median_s']:.2f}x; loss {std['loss']:.5f} vs {chk['loss']:.5f}; "
          f"grad norms hidden {std['grad_hidden_norm']:.4g} vs {chk['grad_hidden_norm']:.4g}, "
          f"weight {std['grad_weight_norm']:.4g} vs {chk['grad_weight_norm']:.4g}")


if __name__ == "__main__":
    main()
