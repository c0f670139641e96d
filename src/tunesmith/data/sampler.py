"""Training order for ``mix_strategy: sequential``: phases in the listed order, shuffled only within."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence


class PhasedSampler:
    """Yields indices of phase 0 (shuffled), then phase 1 (shuffled), ...; deterministic per epoch.

    ``phase_sizes`` are the example counts of the consecutive phases in the dataset. Trainer calls
    ``set_epoch`` so each epoch reshuffles within phases, and resuming replays the same order.
    """

    def __init__(self, phase_sizes: Sequence[int], seed: int, shuffle: bool = True) -> None:
        self.phase_sizes = list(phase_sizes)
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return sum(self.phase_sizes)

    def __iter__(self) -> Iterator[int]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        start = 0
        for size in self.phase_sizes:
            indices = list(range(start, start + size))
            if self.shuffle:
                rng.shuffle(indices)
            yield from indices
            start += size


def phase_start_steps(phase_sizes: Sequence[int], examples_per_step: int) -> list[int]:
    """Optimizer step (1-based) during which each phase's first example is trained, per epoch."""
    steps, seen = [], 0
    for size in phase_sizes:
        steps.append(seen // examples_per_step + 1)
        seen += size
    return steps
