"""Stage metrics (rewards, log-probs, ...) summed over the micro-batches between two logging steps and
averaged per example, across processes too."""

from __future__ import annotations

import torch


class StageMetrics:
    def __init__(self) -> None:
        self.sums: dict[str, dict[str, list[float]]] = {"train": {}, "eval": {}}

    def add(self, split: str, values: dict[str, torch.Tensor]) -> None:
        store = self.sums[split]
        for name, value in values.items():
            value = value.detach().float().reshape(-1)
            total = store.setdefault(name, [0.0, 0.0])
            total[0] += float(value.sum())
            total[1] += value.numel()

    def collect(self, split: str, reduce=None) -> dict[str, float]:
        """Averages since the last collect (then cleared). ``reduce`` sums a tensor across processes."""
        store, self.sums[split] = self.sums[split], {}
        if not store:
            return {}
        names = sorted(store)
        sums = torch.tensor([store[n] for n in names], dtype=torch.float64)
        if reduce is not None:
            sums = reduce(sums)
        return {n: round(float(s / c), 4) for n, (s, c) in zip(names, sums.tolist()) if c > 0}
