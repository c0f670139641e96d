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


def example_cost(item: dict) -> tuple[int, int]:
    """(rows, longest row) an encoded example adds to a padded batch: a pair puts its chosen and rejected
    rows in the batch, a KTO example its reply and KL counterpart."""
    second = item.get("rejected_input_ids") or item.get("kl_input_ids")
    if second is not None:
        return 2, max(len(item["input_ids"]), len(second))
    return 1, len(item["input_ids"])


def budget_batches(costs: Sequence[tuple[int, int]], max_tokens: int, multiple: int, sort: bool
                   ) -> list[list[int]]:
    """Greedy micro-batches whose padded size (rows x longest row rounded up to ``multiple``) stays within
    ``max_tokens``; with ``sort`` the examples are taken longest first, so each batch holds similar lengths."""
    order = sorted(range(len(costs)), key=lambda i: (-costs[i][1], i)) if sort else range(len(costs))
    batches: list[list[int]] = []
    current: list[int] = []
    rows = longest = 0
    for i in order:
        r, n = costs[i]
        width = -(-max(longest, n) // multiple) * multiple
        if current and (rows + r) * width > max_tokens:
            batches.append(current)
            current, rows, longest = [], 0, 0
        current.append(i)
        rows, longest = rows + r, max(longest, n)
    if current:
        batches.append(current)
    return batches


class TokenBudgetBatches:
    """Token-budget batching: micro-batches of at most ``max_tokens`` tokens, padding included, instead of a
    fixed number of examples. The partition is fixed (examples of similar length together, within each
    sequential phase); each epoch shuffles the order of the batches within each phase (deterministic per
    epoch, so resuming replays it). With several processes each takes every world_size-th batch, the last
    ones repeating the first so that every process runs the same number of steps.
    """

    def __init__(self, costs: Sequence[tuple[int, int]], max_tokens: int, seed: int, shuffle: bool = True,
                 phase_sizes: Sequence[int] | None = None, multiple: int = 8, rank: int = 0,
                 world_size: int = 1) -> None:
        self.seed, self.shuffle, self.rank, self.world_size = seed, shuffle, rank, world_size
        self.epoch = 0
        self.phases: list[list[list[int]]] = []
        start = 0
        for size in phase_sizes or [len(costs)]:
            local = budget_batches(costs[start:start + size], max_tokens, multiple, sort=shuffle)
            self.phases.append([[start + i for i in batch] for batch in local])
            start += size

    @property
    def phase_batch_counts(self) -> list[int]:
        return [len(p) for p in self.phases]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-sum(self.phase_batch_counts) // self.world_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        order: list[list[int]] = []
        for batches in self.phases:
            batches = list(batches)
            if self.shuffle:
                rng.shuffle(batches)
            order += batches
        order += order[: len(self) * self.world_size - len(order)]
        yield from order[self.rank::self.world_size]
