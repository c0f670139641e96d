"""Mixing several datasets: concat, interleave_under / interleave_over / interleave_once, sequential.

``sequential`` keeps the listed order: every example of the first dataset is trained before any of the
second (each shuffled only within itself, see sampler.PhasedSampler). The others produce one pool that
the trainer shuffles as a whole.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..config.errors import ConfigError

STRATEGIES = ("concat", "interleave_under", "interleave_over", "interleave_once", "sequential")


def interleave(parts: Sequence[Sequence], probs: Sequence[float] | None, strategy: str, seed: int) -> list:
    """Draw from the parts (round-robin without probabilities, else at random with ``probs``).

    under: stop when the first part is exhausted; over: until every part was exhausted once, restarting
    exhausted parts (oversampling); once: until every part is exhausted, never repeating an example.
    """
    if probs and len(probs) != len(parts):
        raise ConfigError(f"`interleave_probs` has {len(probs)} values for {len(parts)} datasets")
    rng = random.Random(seed)
    cursors = [0] * len(parts)
    exhausted = [len(p) == 0 for p in parts]
    live = [i for i, p in enumerate(parts) if len(p)]
    out = []
    turn = 0
    while live:
        if probs:
            weights = [probs[i] for i in live]
            if sum(weights) <= 0:
                break
            k = rng.choices(live, weights=weights)[0]
        else:
            k = live[turn % len(live)]
            turn += 1
        if cursors[k] >= len(parts[k]):
            exhausted[k] = True
            if strategy == "interleave_under" or (strategy == "interleave_over" and all(exhausted)):
                break
            if strategy == "interleave_once":
                live.remove(k)
                continue
            cursors[k] = 0  # interleave_over: start this part again
        out.append(parts[k][cursors[k]])
        cursors[k] += 1
    return out
