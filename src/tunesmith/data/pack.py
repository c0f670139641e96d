"""Contamination-free packing: several encoded sequences per row, never attending to each other.

Rows carry ``position_ids`` that restart at 0 for every sequence and no attention mask; transformers
turns that into a block-diagonal causal mask (eager/SDPA/flex) or varlen boundaries (flash-attention).
The first label of every sequence is IGNORE_INDEX, so no token is predicted from a previous sequence.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from ..types import IGNORE_INDEX, EncodedExample, PackedRow


def best_fit_bins(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Best-fit decreasing: indices grouped into bins whose total length is at most ``capacity``.

    Deterministic: ties are broken by original index. O(n log n).
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    room: list[tuple[int, int]] = []  # sorted (remaining capacity, bin id)
    for i in order:
        need = lengths[i]
        pos = bisect.bisect_left(room, (need, -1))
        if pos < len(room):
            left, b = room.pop(pos)
            bins[b].append(i)
            bisect.insort(room, (left - need, b))
        else:
            bins.append([i])
            bisect.insort(room, (capacity - need, len(bins) - 1))
    return bins


def pack_examples(examples: Sequence[EncodedExample], cutoff_len: int) -> list[PackedRow]:
    """Pack examples (each at most ``cutoff_len`` long) into rows of at most ``cutoff_len`` tokens."""
    bins = best_fit_bins([len(e.input_ids) for e in examples], cutoff_len)
    rows = []
    for members in bins:
        members.sort()  # keep the dataset order inside a row
        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for i in members:
            ex = examples[i]
            ids += ex.input_ids
            labels += [IGNORE_INDEX] + ex.labels[1:]
            positions += list(range(len(ex.input_ids)))
        rows.append(PackedRow(ids, labels, positions, len(members)))
    return rows
