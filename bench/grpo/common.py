"""What both sides of the GRPO benchmark share: the prompts, the reward function and the settings."""

from __future__ import annotations

import random

STEPS = 30
GROUP = 8  # num_generations
BATCH = 8  # completions per optimizer step (per_device_train_batch_size), one prompt x 8
MAX_COMPLETION = 8
LR = 4e-4
SEED = 0


def arithmetic_rows(n: int = 64, seed: int = 0) -> list[dict]:
    """alpaca rows `What is a+b?` -> `a+b=c` (the sft data and, without the output, the GRPO prompts)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        rows.append({"instruction": f"What is {a}+{b}?", "input": "", "output": f"{a}+{b}={a + b}"})
    return rows


def ones(completions, **kwargs):
    """The rule-based reward: how many times the digit 1 appears in the completion."""
    return [float(c.count("1")) for c in completions]
