"""Reply log-probs from logits, three ways, forward and backward timed on one DPO-sized batch (CPU, float32).

    python bench/preference/logps_kernels.py [--rows 8] [--length 288] [--vocab 4096] [--reps 20]

- logsumexp: tunesmith's ``token_logps`` formula, gather(logits) - logsumexp(logits); no (B, T, V)
  log-softmax tensor is kept for the backward;
- log_softmax: LLaMA-Factory's ``get_batch_logps`` formula, gather(log_softmax(logits));
- cross_entropy: ``-F.cross_entropy(..., reduction="none")``, the fused kernel.

All three give the same values (checked). The shapes default to the widest-but-one batch of the dpo
benchmark (8 rows of 288 positions, vocab 4096). Written to back one line of results.md; not run by run.sh.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

IGNORE = -100


def logsumexp_way(logits, labels):
    lg, tg = logits[:, :-1], labels[:, 1:]
    mask = tg != IGNORE
    picked = torch.gather(lg, 2, tg.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return ((picked - torch.logsumexp(lg, dim=-1)) * mask).sum(-1)


def log_softmax_way(logits, labels):
    tg = labels[:, 1:].clone()
    mask = tg != IGNORE
    tg[~mask] = 0
    return (torch.gather(logits[:, :-1].log_softmax(-1), 2, tg.unsqueeze(2)).squeeze(2) * mask).sum(-1)


def cross_entropy_way(logits, labels):
    b, t, v = logits.shape
    nll = F.cross_entropy(logits[:, :-1].reshape(-1, v), labels[:, 1:].reshape(-1), ignore_index=IGNORE,
                          reduction="none")
    return -nll.view(b, t - 1).sum(-1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--length", type=int, default=288)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()

    torch.manual_seed(0)
    logits = torch.randn(args.rows, args.length, args.vocab)
    labels = torch.randint(0, args.vocab, (args.rows, args.length))
    labels[:, : args.length // 3] = IGNORE  # the prompt is not scored
    ways = {"logsumexp (tunesmith)": logsumexp_way, "log_softmax (LLaMA-Factory)": log_softmax_way,
            "cross_entropy": cross_entropy_way}
    ref = log_softmax_way(logits, labels)
    for name, fn in ways.items():
        assert torch.allclose(fn(logits, labels), ref, rtol=1e-4, atol=1e-2), name
    print(f"{args.rows} x {args.length} x {args.vocab}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"median of {args.reps} (ms)")
    for name, fn in ways.items():
        fwd, bwd = [], []
        for _ in range(args.reps + 2):
            x = logits.clone().requires_grad_(True)
            t0 = time.perf_counter()
            y = fn(x, labels).sum()
            t1 = time.perf_counter()
            y.backward()
            fwd.append(t1 - t0)
            bwd.append(time.perf_counter() - t1)
        fwd, bwd = sorted(fwd[2:]), sorted(bwd[2:])
        print(f"  {name:28s} forward {1000 * fwd[len(fwd) // 2]:6.1f}   backward {1000 * bwd[len(bwd) // 2]:6.1f}")


if __name__ == "__main__":
    main()
