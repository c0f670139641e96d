"""Packing never leaks: packed logits equal each sequence run alone, and the loss is the same tokens'."""

from __future__ import annotations

import pytest
import torch

from tunesmith.data.collate import Collator, EncodedDataset
from tunesmith.data.pack import best_fit_bins, pack_examples
from tunesmith.types import IGNORE_INDEX, EncodedExample


def test_best_fit_bins_respects_capacity_and_uses_every_item():
    lengths = [7, 3, 5, 2, 2, 8, 1, 4]
    bins = best_fit_bins(lengths, 10)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 10 for b in bins)
    assert len(bins) == 4  # 32 tokens need at least 4 bins of 10


def examples(vocab: int, lengths: list[int], seed: int = 0) -> list[EncodedExample]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(10, vocab, (n,), generator=g).tolist()
        labels = [IGNORE_INDEX] * (n // 2) + ids[n // 2:]
        out.append(EncodedExample(ids, labels))
    return out


def test_pack_layout():
    exs = examples(100, [5, 3, 4])
    (row,) = pack_examples(exs, 12)
    assert row.input_ids == exs[0].input_ids + exs[1].input_ids + exs[2].input_ids
    assert row.position_ids == [0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2, 3]
    assert row.labels[0] == row.labels[5] == row.labels[8] == IGNORE_INDEX


@pytest.mark.parametrize("family", ["qwen2", "llama3"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_logits_equal_each_sequence_alone(family, attn, request):
    from transformers import AutoModelForCausalLM

    path = request.getfixturevalue(f"{family}_model")
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attn).eval()
    exs = examples(model.config.vocab_size, [9, 5, 12, 3])
    rows = pack_examples(exs, 32)
    assert len(rows) == 1
    batch = Collator(pad_token_id=0)([EncodedDataset(rows)[0]])
    assert "attention_mask" not in batch  # block-diagonal attention comes from the restarting positions
    with torch.no_grad():
        # use_cache=False as in training (Trainer sets it): with a KV cache transformers skips packed masks
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        start = 0
        for ex in exs:
            alone = model(input_ids=torch.tensor([ex.input_ids])).logits[0]
            torch.testing.assert_close(packed[start:start + len(ex.input_ids)], alone, rtol=1e-4, atol=1e-4)
            start += len(ex.input_ids)


def test_packed_loss_sums_the_same_token_losses(qwen2_model):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(qwen2_model).eval()
    exs = examples(model.config.vocab_size, [9, 5, 12], seed=1)
    packed = Collator(0)([EncodedDataset(pack_examples(exs, 32))[0]])
    padded = Collator(0)([{"input_ids": e.input_ids, "labels": e.labels} for e in exs])
    n_items = sum(sum(1 for x in e.labels[1:] if x != IGNORE_INDEX) for e in exs)
    with torch.no_grad():
        a = model(**packed, num_items_in_batch=n_items, use_cache=False).loss
        b = model(**padded, num_items_in_batch=n_items).loss
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
