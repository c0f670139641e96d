"""Batching: pad rows to a common length (multiple of 8), or keep packed rows with restarting
position ids and no attention mask, so that attention stays inside each packed sequence."""

from __future__ import annotations

from collections.abc import Sequence

from ..types import IGNORE_INDEX


class EncodedDataset:
    """A map-style dataset over encoded examples (what transformers.Trainer iterates)."""

    def __init__(self, examples: Sequence) -> None:
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict:
        ex = self.examples[index]
        item = {"input_ids": ex.input_ids, "labels": ex.labels}
        if "position_ids" in ex.meta:
            item["position_ids"] = ex.meta["position_ids"]
        return item


class Collator:
    def __init__(self, pad_token_id: int, pad_to_multiple_of: int = 8) -> None:
        self.pad_token_id = pad_token_id
        self.multiple = pad_to_multiple_of

    def __call__(self, items: list[dict]) -> dict:
        import torch

        longest = max(len(item["input_ids"]) for item in items)
        width = -(-longest // self.multiple) * self.multiple if self.multiple else longest
        packed = "position_ids" in items[0]
        ids, labels, mask, positions = [], [], [], []
        for item in items:
            n = len(item["input_ids"])
            pad = width - n
            ids.append(item["input_ids"] + [self.pad_token_id] * pad)
            labels.append(item["labels"] + [IGNORE_INDEX] * pad)
            if packed:
                # Padding forms its own pseudo-sequence (positions restart at 0); it is never trained.
                positions.append(item["position_ids"] + list(range(pad)))
            else:
                mask.append([1] * n + [0] * pad)
        batch = {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels)}
        if packed:
            batch["position_ids"] = torch.tensor(positions)
        else:
            batch["attention_mask"] = torch.tensor(mask)
        return batch
