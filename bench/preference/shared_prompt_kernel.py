"""dpo's training work per batch, shared-prompt rows vs separate rows, interleaved in one process (robust to
other load on the machine: the two layouts alternate batch by batch). Per batch of the preference benchmark's
data: the policy forward + DPO loss + backward (LoRA rank 8 on all linear layers) and the reference forward
(adapters off), as stage dpo runs them.

    .venv/bin/python bench/preference/shared_prompt_kernel.py bench/work/preference/shared/dpo-lora.yaml [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    import torch

    from tunesmith.config.load import load_config
    from tunesmith.stages.base import LossContext
    from tunesmith.stages.registry import get_stage
    from tunesmith.train.plan import make_plan
    from tunesmith.train.prepare import prepare
    from tunesmith.train.setup import build_reference, setup_model

    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cfg = load_config([args.config])
    stage = get_stage(cfg.stage)
    plan = make_plan(cfg, stage)
    prepared = prepare(cfg, stage, plan)
    model = setup_model(cfg, plan, prepared).model
    reference = build_reference(cfg, plan, model)
    loss_fn = stage.loss(cfg)

    class Sink:
        def record(self, **kw):
            pass

        def observe_tokens(self, logits, labels):
            pass

    ctx = LossContext(Sink(), reference)
    items = [ex.item() for ex in prepared.data.train[:args.pairs]]
    batches = {shared: [stage.collator(0, shared_prompt=shared)(items[i:i + args.batch])
                        for i in range(0, len(items), args.batch)] for shared in (False, True)}
    times = {False: [], True: []}
    losses = {False: [], True: []}
    model.train()
    for rnd in range(args.rounds):
        for i in range(len(batches[False])):
            order = (False, True) if (i + rnd) % 2 == 0 else (True, False)
            for shared in order:
                model.zero_grad(set_to_none=True)
                start = time.perf_counter()
                loss = loss_fn(ctx, model, batches[shared][i])
                loss.backward()
                times[shared].append(time.perf_counter() - start)
                if rnd == 0:
                    losses[shared].append(loss.item())
    sep, sha = sum(times[False]) / args.rounds, sum(times[True]) / args.rounds
    ratios = [a / b for a, b in zip(times[False], times[True])]
    diff = max(abs(a - b) for a, b in zip(losses[False], losses[True]))
    print(f"| layout | s per {len(batches[False])} batches (mean of {args.rounds} rounds) | speed |")
    print("|---|---:|---:|")
    print(f"| separate rows | {sep:.2f} | 1.00x |")
    print(f"| shared-prompt rows | {sha:.2f} | {sep / sha:.2f}x |")
    print(f"\nmedian per-batch speed-up {statistics.median(ratios):.2f}x (batches timed back to back); largest "
          f"loss difference at the same weights {diff:.1e}; threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
