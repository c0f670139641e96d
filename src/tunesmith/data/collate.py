"""Batching: pad rows to a common length (multiple of 8), or keep packed rows with restarting position ids
and no attention mask (or with their sequences' boundaries for a varlen attention kernel), so that attention
stays inside each packed sequence. Preference batches put several sequences of an example side by side
(chosen and rejected; a reply and its KL counterpart)."""

from __future__ import annotations

from collections.abc import Sequence

from ..types import IGNORE_INDEX, CausalBatch, EncodedExample, FeedbackBatch, PairBatch


class EncodedDataset:
    """A map-style dataset over encoded records (what transformers.Trainer iterates). ``extra``: values
    computed for each example after encoding (e.g. precomputed reference log-probs), kept beside the
    records instead of written into them: records are shared with the tokenized cache."""

    def __init__(self, examples: Sequence[EncodedExample], extra: Sequence[dict] | None = None) -> None:
        self.examples = list(examples)
        self.extra = list(extra) if extra is not None else None
        if self.extra is not None and len(self.extra) != len(self.examples):
            raise ValueError(f"{len(self.extra)} extra values for {len(self.examples)} examples")

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict:
        item = self.examples[index].item()
        if self.extra is not None:
            item.update(self.extra[index])
        return item


class Collator:
    """Pads rows to one width (a multiple of 8). Packed rows keep their restarting position ids and get no
    attention mask; unpacked rows get an attention mask.

    ``boundaries``: every batch carries position ids and the sequences' boundaries over the flattened batch
    (``cu_seq_lens_q``... for a varlen attention kernel) instead of a mask; an unpacked row is its sequence
    followed by its padding as a second pseudo-sequence. ``loss_index``: every batch also carries the flat
    positions whose next token is trained (``loss_index``) and those targets (``loss_targets``), computed
    here on the CPU for the chunked loss. ``width``: pad every batch to at least this many tokens (one shape
    for compiled layers). ``padding_free``: the batch's examples are laid end to end in one row, positions
    restarting at each (the same examples per step as padded rows, without the padding; no example attends
    to another, and none's first token is predicted from the one before it).
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int = 8, boundaries: bool = False,
                 loss_index: bool = False, width: int = 0, padding_free: bool = False) -> None:
        self.pad_token_id = pad_token_id
        self.multiple = pad_to_multiple_of
        self.boundaries = boundaries
        self.loss_index = loss_index
        self.width = width
        self.padding_free = padding_free

    def __call__(self, items: list[dict]) -> CausalBatch:
        import torch

        if self.padding_free:
            items = [end_to_end(items)]
        longest = max(self.width, *(len(item["input_ids"]) for item in items))
        width = -(-longest // self.multiple) * self.multiple if self.multiple else longest
        packed = "position_ids" in items[0]
        ids, labels, mask, positions = [], [], [], []
        for item in items:
            n = len(item["input_ids"])
            pad = width - n
            ids.append(item["input_ids"] + [self.pad_token_id] * pad)
            labels.append(item["labels"] + [IGNORE_INDEX] * pad)
            if packed or self.boundaries:
                # Padding forms its own pseudo-sequence (positions restart at 0); it is never trained.
                positions.append((item["position_ids"] if packed else list(range(n))) + list(range(pad)))
            else:
                mask.append([1] * n + [0] * pad)
        batch: CausalBatch = {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels)}
        if positions:
            batch["position_ids"] = torch.tensor(positions)
        else:
            batch["attention_mask"] = torch.tensor(mask)
        if self.boundaries:
            batch.update(sequence_boundaries(batch["position_ids"]))
        if self.loss_index:
            targets = torch.nn.functional.pad(batch["labels"][:, 1:], (0, 1), value=IGNORE_INDEX).reshape(-1)
            index = (targets != IGNORE_INDEX).nonzero().squeeze(1)
            batch["loss_index"], batch["loss_targets"] = index, targets[index]
        return batch


def end_to_end(items: list[dict]) -> dict:
    """Examples (or packed rows) as one row: ids and labels concatenated, positions restarting at each
    example, and each example's first label ignored (it would be predicted from the previous example)."""
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for item in items:
        n = len(item["input_ids"])
        ids += item["input_ids"]
        labels += [IGNORE_INDEX] + item["labels"][1:] if n else []
        positions += item["position_ids"] if "position_ids" in item else list(range(n))
    return {"input_ids": ids, "labels": labels, "position_ids": positions}


def sequence_boundaries(position_ids) -> dict:
    """Flash-attention keyword arguments for (B, T) position ids that restart at 0 at every sequence start
    (and at every row start): cumulative sequence starts over the flattened batch (int32) and the longest
    sequence (an int). Computed on the CPU, so the GPU never syncs to find them."""
    import torch

    flat = position_ids.reshape(-1)
    cu = torch.cat([(flat == 0).nonzero().squeeze(1), torch.tensor([flat.numel()])]).to(torch.int32)
    longest = int(cu.diff().max())
    return {"cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": longest, "max_length_k": longest}


def pad_rows(rows: list[tuple[list[int], list[int]]], pad_token_id: int, multiple: int = 8) -> dict:
    """Right-pad (ids, labels) rows to one width (a multiple of ``multiple``) with an attention mask."""
    import torch

    longest = max(len(ids) for ids, _ in rows)
    width = -(-longest // multiple) * multiple if multiple else longest
    ids = [r + [pad_token_id] * (width - len(r)) for r, _ in rows]
    labels = [lab + [IGNORE_INDEX] * (width - len(lab)) for _, lab in rows]
    mask = [[1] * len(r) + [0] * (width - len(r)) for r, _ in rows]
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}


class PairCollator:
    """B pairs -> 2B rows: chosen_1..chosen_B then rejected_1..rejected_B, one padded batch (one forward
    pass). Precomputed reference log-probs, when present, come along as ``ref_logps`` (2B,)."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int = 8) -> None:
        self.pad_token_id = pad_token_id
        self.multiple = pad_to_multiple_of

    def __call__(self, items: list[dict]) -> PairBatch:
        import torch

        rows = [(it["input_ids"], it["labels"]) for it in items]
        rows += [(it["rejected_input_ids"], it["rejected_labels"]) for it in items]
        batch = pad_rows(rows, self.pad_token_id, self.multiple)
        if "ref_chosen_logps" in items[0]:
            batch["ref_logps"] = torch.tensor([it["ref_chosen_logps"] for it in items]
                                              + [it["ref_rejected_logps"] for it in items], dtype=torch.float32)
        return batch


class FeedbackCollator:
    """KTO: the replies (``input_ids``...) and their mismatched KL counterparts (``kl_input_ids``...), each
    padded on its own, and ``kto_tags`` (B,) bool."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int = 8) -> None:
        self.pad_token_id = pad_token_id
        self.multiple = pad_to_multiple_of

    def __call__(self, items: list[dict]) -> FeedbackBatch:
        import torch

        batch = pad_rows([(it["input_ids"], it["labels"]) for it in items], self.pad_token_id, self.multiple)
        kl = pad_rows([(it["kl_input_ids"], it["kl_labels"]) for it in items], self.pad_token_id, self.multiple)
        batch.update({f"kl_{key}": value for key, value in kl.items()})
        batch["kto_tags"] = torch.tensor([bool(it["kto_tag"]) for it in items])
        if "ref_logps" in items[0]:
            batch["ref_logps"] = torch.tensor([it["ref_logps"] for it in items], dtype=torch.float32)
            batch["ref_kl_logps"] = torch.tensor([it["ref_kl_logps"] for it in items], dtype=torch.float32)
        return batch
