"""Exact masks: prompt and header tokens are -100; replies train with their end-of-turn token."""

from __future__ import annotations

import pytest

from tunesmith.data.encode import encode_pretrain, encode_supervised, split_budget
from tunesmith.data.formats import to_conversation
from tunesmith.data.registry import get_dataset_attrs
from tunesmith.data.files import load_rows
from tunesmith.templates.builtin import get_template
from tunesmith.types import IGNORE_INDEX, Conversation, Message


@pytest.fixture(scope="module")
def tok(qwen2_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(qwen2_model)


def trained_text(tok, example) -> str:
    return tok.decode([t for t in example.labels if t != IGNORE_INDEX])


def test_minimind_example_trains_answer_and_end_of_turn_only(tok, data_dir):
    attr = get_dataset_attrs(("minimind",), data_dir)[0]
    conv = to_conversation(attr, load_rows(attr)[0], 0)
    (ex,), stats = encode_supervised([conv], tok, get_template("qwen3_nothink"), cutoff_len=64)
    assert tok.decode(ex.input_ids) == "<|im_start|>user\n1+1=?<|im_end|>\n<|im_start|>assistant\n2<|im_end|>"
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    two = tok.encode("2", add_special_tokens=False)
    assert [t for t in ex.labels if t != IGNORE_INDEX] == two + [im_end]
    # everything before the answer (header included) is masked; labels align 1:1 with input_ids
    n_prompt = len(ex.input_ids) - len(two) - 1
    assert ex.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert ex.labels[n_prompt:] == ex.input_ids[n_prompt:]
    assert stats.trained_tokens == len(two) + 1


def test_every_assistant_turn_is_trained_and_separators_are_not(tok):
    conv = Conversation((Message("user", "hi"), Message("assistant", "hello there"),
                         Message("user", "1+1=?"), Message("assistant", "2")), system="Be brief.")
    (ex,), _ = encode_supervised([conv], tok, get_template("qwen3_nothink"), cutoff_len=128)
    assert tok.decode(ex.input_ids) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        "hello there<|im_end|>\n<|im_start|>user\n1+1=?<|im_end|>\n<|im_start|>assistant\n2<|im_end|>")
    assert trained_text(tok, ex) == "hello there<|im_end|>2<|im_end|>"


def test_mask_history_and_train_on_prompt(tok):
    conv = Conversation((Message("user", "hi"), Message("assistant", "hello"), Message("user", "x"),
                         Message("assistant", "y")))
    tpl = get_template("qwen3_nothink")
    (last_only,), _ = encode_supervised([conv], tok, tpl, 128, mask_history=True)
    assert trained_text(tok, last_only) == "y<|im_end|>"
    (everything,), _ = encode_supervised([conv], tok, tpl, 128, train_on_prompt=True)
    assert everything.labels == everything.input_ids


def test_llama3_prefix_and_headers_are_masked(llama3_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(llama3_model)
    conv = Conversation((Message("user", "1+1=?"), Message("assistant", "2")))
    (ex,), _ = encode_supervised([conv], tok, get_template("llama3"), 64)
    assert tok.decode(ex.input_ids) == ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n1+1=?<|eot_id|>"
                                        "<|start_header_id|>assistant<|end_header_id|>\n\n2<|eot_id|>")
    assert trained_text(tok, ex) == "2<|eot_id|>"


def test_split_budget_is_proportional():
    assert split_budget(10, 10, 100) == (10, 10)        # fits
    assert split_budget(300, 20, 100) == (80, 20)       # short reply keeps all of itself
    assert split_budget(20, 300, 100) == (20, 80)       # short prompt keeps all of itself
    assert split_budget(300, 100, 100) == (75, 25)      # both long: proportional


def test_truncation_counts_and_drops_examples_without_trained_tokens(tok):
    long_prompt = Conversation((Message("user", "word " * 200), Message("assistant", "ok")))
    short = Conversation((Message("user", "a"), Message("assistant", "b")))
    examples, stats = encode_supervised([long_prompt, short], tok, get_template("qwen3_nothink"), cutoff_len=16)
    assert stats.truncated == 1 and len(examples) == 2
    assert all(len(e.input_ids) <= 16 for e in examples)
    examples, stats = encode_supervised([short], tok, get_template("qwen3_nothink"), cutoff_len=3)
    assert stats.dropped_empty == 0 or not examples  # 3 tokens cannot hold header + reply
    assert len(examples) + stats.dropped_empty == 1


def test_pretrain_rows_restart_positions_per_document(tok):
    texts = ["alpha beta gamma", "one two", "x" * 5]
    rows, stats = encode_pretrain(texts, tok, cutoff_len=8)
    eos = tok.eos_token_id
    docs = [tok.encode(t, add_special_tokens=False) + [eos] for t in texts]
    flat = [t for d in docs for t in d]
    got = [t for r in rows for t in r.input_ids]
    # concatenated in order; only a trailing single-token piece (nothing to predict in it) may be left out
    assert got == flat[:len(got)] and len(flat) - len(got) <= 1
    assert all(len(r.input_ids) <= 8 for r in rows)
    for row in rows:
        pos = row.position_ids
        starts = [i for i, p in enumerate(pos) if p == 0]
        assert starts[0] == 0
        for s in starts:  # the first token of each piece is never predicted from the previous document
            assert row.labels[s] == IGNORE_INDEX
        assert all(row.labels[i] == row.input_ids[i] for i in range(len(pos)) if i not in starts)
