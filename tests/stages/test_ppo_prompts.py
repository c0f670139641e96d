"""Stage ppo reads sft-style rows as prompts: exactly the sft prompt (history, last user turn, assistant
header), replies ignored; rows may end with the user turn; prompts that do not fit are dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.config.schema import DataArgs
from tunesmith.data.registry import DatasetAttr, parse_entry
from tunesmith.data.kinds import get_kind
from tunesmith.stages.rl.batch import RolloutBatch, reply_logprobs
from tunesmith.templates.stops import stop_token_ids
from tunesmith.templates.builtin import get_template

QWEN3 = get_template("qwen3_nothink")


@pytest.fixture(scope="module")
def tok(qwen2_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(qwen2_model)


def attr_of(entry: dict) -> DatasetAttr:
    return parse_entry("d", entry, Path("."), Path("dataset_info.json"))


def encode(tok, entry, rows, cutoff_len=128):
    return get_kind("prompt").encode(attr_of(entry), rows, tok, QWEN3, DataArgs(cutoff_len=cutoff_len))


def test_prompts_are_the_sft_prompts_and_replies_are_ignored(tok):
    rows = [{"instruction": "What is 1+1?", "input": "", "output": "1+1=2"},
            {"instruction": "What is 2+2?"}]  # no output column: a prompt-only row
    (first, second), stats = encode(tok, {"file_name": "x.json"}, rows)
    assert tok.decode(first.input_ids) == "<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n"
    assert tok.decode(second.input_ids).startswith("<|im_start|>user\nWhat is 2+2?")
    assert set(first.labels) == {-100} and stats.kept == 2


def test_sharegpt_history_is_kept_and_an_open_end_is_a_prompt(tok):
    entry = {"file_name": "x.json", "formatting": "sharegpt"}
    rows = [{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"},
                               {"from": "human", "value": "1+1?"}, {"from": "gpt", "value": "2"}]},
            {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"},
                               {"from": "human", "value": "1+1?"}]}]
    (closed, open_), _ = encode(tok, entry, rows)
    text = ("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n<|im_start|>user\n1+1?"
            "<|im_end|>\n<|im_start|>assistant\n")
    assert tok.decode(closed.input_ids) == text and open_.input_ids == closed.input_ids


def test_prompts_longer_than_cutoff_are_dropped(tok):
    rows = [{"instruction": "What is 1+1?", "output": "2"}, {"instruction": " ".join(["word"] * 200), "output": ""}]
    examples, stats = encode(tok, {"file_name": "x.json"}, rows, cutoff_len=64)
    assert len(examples) == 1 and stats.dropped_rows == [1]


def test_stop_tokens_and_reply_log_probs_cover_reply_tokens_only(tok):
    import torch

    ids = stop_token_ids(tok, QWEN3)
    assert tok.convert_tokens_to_ids("<|im_end|>") in ids
    batch = RolloutBatch.build([[1, 2, 3], [4]], [[5, 6], [7, 8, 9]], pad_id=0)
    assert batch.input_ids.tolist() == [[1, 2, 3, 5, 6], [4, 7, 8, 9, 0]]
    assert batch.reply_mask().tolist() == [[1, 1, 0], [1, 1, 1]]
    # logits that put all mass on token (position + 10): log-prob 0 exactly where the target is pos + 10
    logits = torch.full((2, 5, 20), -1e4)
    for row, targets in enumerate(([0, 0, 5, 6, 0], [7, 8, 9, 0, 0])):  # target of position t is token t+1
        for pos, target in enumerate(targets):
            logits[row, pos, target] = 0.0
    assert reply_logprobs(logits, batch, 3)[batch.reply_mask().bool()].tolist() == [0.0] * 5
