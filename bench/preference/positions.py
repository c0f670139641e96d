"""Token positions the dpo/rm forward passes process on the preference benchmark's data, separate rows vs
shared-prompt rows (no timing, no model run: the collators' output only).

    .venv/bin/python bench/preference/positions.py bench/work/preference/shared/dpo-lora.yaml [--batch 4] [--pairs 120]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from tunesmith.config.load import load_config
    from tunesmith.stages.registry import get_stage
    from tunesmith.train.prepare import prepare_as_planned

    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=120)
    args = parser.parse_args()
    cfg = load_config([args.config])
    stage = get_stage(cfg.stage)
    items = [ex.item() for ex in prepare_as_planned(cfg).data.train[:args.pairs]]
    totals = {}
    for shared in (False, True):
        collate = stage.collator(0, shared_prompt=shared)
        positions = real = 0
        for start in range(0, len(items), args.batch):
            batch = collate(items[start:start + args.batch])
            positions += batch["input_ids"].numel()
            real += int((batch["segment_ids"] >= 0).sum()) if shared else int(batch["attention_mask"].sum())
        totals[shared] = (positions, real)
    (p0, r0), (p1, r1) = totals[False], totals[True]
    print("| layout | positions | real tokens | padding |")
    print("|---|---:|---:|---:|")
    print(f"| separate rows (2B per batch) | {p0:,} | {r0:,} | {100 * (p0 - r0) / p0:.0f}% |")
    print(f"| shared-prompt rows (B per batch) | {p1:,} | {r1:,} | {100 * (p1 - r1) / p1:.0f}% |")
    print(f"\nshared rows process {p1 / p0:.2f}x the positions ({r0 - r1:,} prompt tokens computed once instead of "
          "twice)")


if __name__ == "__main__":
    main()
