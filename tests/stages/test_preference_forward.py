"""The preference forward pass computes logits only where replies are scored, with the same log-probs."""

from __future__ import annotations

import pytest
import torch

from tunesmith.data.collate import PairCollator
from tunesmith.data.encode_preference import encode_pairwise
from tunesmith.data.files import load_rows
from tunesmith.data.formats.preference import to_pair
from tunesmith.data.registry import get_dataset_attrs
from tunesmith.stages.preference.forward import logps_of, reply_window
from tunesmith.stages.preference.losses import sequence_logps
from tunesmith.templates.builtin import get_template


@pytest.fixture(scope="module")
def batch(qwen2_model, data_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(qwen2_model)
    attr = get_dataset_attrs(("pairs",), data_dir)[0]
    pairs = [to_pair(attr, row, i) for i, row in enumerate(load_rows(attr))]
    examples, _ = encode_pairwise(pairs, tok, get_template("qwen3_nothink"), cutoff_len=128)
    return PairCollator(tok.pad_token_id)([e.item()
                                            for e in examples[:4]])


@pytest.mark.parametrize("lora", [False, True])
def test_windowed_logits_give_the_full_forward_log_probs(batch, qwen2_model, lora):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(qwen2_model).eval()
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    keep = reply_window(labels)
    assert keep < labels.shape[1]  # the prompt positions are skipped
    with torch.no_grad():
        logps, lengths, logits, covered = logps_of(model, ids, mask, labels, "sigmoid")
        full = model(input_ids=ids, attention_mask=mask).logits
        expected, expected_lengths = sequence_logps(full, labels)
    assert logits.shape[1] == keep and covered.shape == logits.shape[:2]
    assert torch.equal(lengths, expected_lengths)
    assert torch.allclose(logps, expected, atol=1e-5)
    assert torch.equal(covered, labels[:, -keep:])
