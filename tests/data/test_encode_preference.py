"""Preference data: pairs and feedback rows encoded with the sft template and masks; bad rows fail clearly."""

from __future__ import annotations

import json

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.data import cache
from tunesmith.data.encode_preference import encode_feedback, encode_pairwise
from tunesmith.data.files import load_rows
from tunesmith.data.formats.preference import to_feedback, to_pair
from tunesmith.data.registry import get_dataset_attrs, parse_entry
from tunesmith.templates.builtin import get_template
from tunesmith.types import IGNORE_INDEX

QWEN3 = get_template("qwen3_nothink")


@pytest.fixture(scope="module")
def tok(qwen2_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(qwen2_model)


def pairs_of(name, data_dir):
    attr = get_dataset_attrs((name,), data_dir)[0]
    return [to_pair(attr, row, i) for i, row in enumerate(load_rows(attr))]


def trained(tok, ids, labels) -> str:
    return tok.decode([t for t, lab in zip(ids, labels) if lab != IGNORE_INDEX])


def test_pair_masks_train_exactly_each_reply_and_its_end_of_turn(tok, data_dir):
    (ex, *_), stats = encode_pairwise(pairs_of("pairs", data_dir), tok, QWEN3, cutoff_len=128)
    prompt = "<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n"
    assert tok.decode(ex.input_ids) == prompt + "1+1=2<|im_end|>"
    assert tok.decode(ex.rejected_input_ids) == prompt + "1+1=5 maybe<|im_end|>"
    assert trained(tok, ex.input_ids, ex.labels) == "1+1=2<|im_end|>"
    assert trained(tok, ex.rejected_input_ids, ex.rejected_labels) == "1+1=5 maybe<|im_end|>"
    n_prompt = len(tok.encode(prompt, add_special_tokens=False))
    assert ex.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt == ex.rejected_labels[:n_prompt]
    assert ex.input_ids[:n_prompt] == ex.rejected_input_ids[:n_prompt]
    assert stats.kept == 8 and stats.dropped_empty == 0


def test_alpaca_and_sharegpt_ranking_rows_encode_identically(tok, data_dir):
    a, _ = encode_pairwise(pairs_of("pairs", data_dir), tok, QWEN3, cutoff_len=128)
    b, _ = encode_pairwise(pairs_of("pairs_alpaca", data_dir), tok, QWEN3, cutoff_len=128)
    assert a == b


def test_multi_turn_history_is_prompt_only(tok, tmp_path):
    row = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"},
                             {"from": "human", "value": "1+1?"}],
           "chosen": {"from": "gpt", "value": "2"}, "rejected": {"from": "gpt", "value": "3"}}
    attr = parse_entry("p", {"file_name": "p.json", "ranking": True, "formatting": "sharegpt",
                             "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}},
                       tmp_path, tmp_path / "dataset_info.json")
    (ex,), _ = encode_pairwise([to_pair(attr, row, 0)], tok, QWEN3, cutoff_len=128)
    assert trained(tok, ex.input_ids, ex.labels) == "2<|im_end|>"
    assert tok.decode(ex.input_ids).startswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello")


def test_truncation_cuts_both_replies_to_one_budget(tok, data_dir):
    (ex, *_), stats = encode_pairwise(pairs_of("pairs", data_dir), tok, QWEN3, cutoff_len=12)
    assert len(ex.input_ids) <= 12 and len(ex.rejected_input_ids) <= 12
    n_prompt = sum(1 for lab in ex.labels if lab == IGNORE_INDEX)
    assert n_prompt == sum(1 for lab in ex.rejected_labels if lab == IGNORE_INDEX)
    assert stats.truncated == 8


def test_feedback_rows_pair_each_prompt_with_the_previous_reply_for_kl(tok, data_dir):
    attr = get_dataset_attrs(("feedback",), data_dir)[0]
    rows = load_rows(attr)
    convs, tags = zip(*(to_feedback(attr, row, i) for i, row in enumerate(rows)))
    examples, stats = encode_feedback(convs, tags, tok, QWEN3, cutoff_len=128)
    assert [ex.kto_tag for ex in examples] == [True, False] * 8
    first, second = examples[0], examples[1]
    assert trained(tok, first.input_ids, first.labels) == "1+1=2<|im_end|>"
    assert trained(tok, second.input_ids, second.labels) == "1+1=5 maybe<|im_end|>"
    # KL completion of row i: row i's prompt with row i-1's reply (row 0 takes the last row's)
    assert trained(tok, second.kl_input_ids, second.kl_labels) == "1+1=2<|im_end|>"
    assert trained(tok, first.kl_input_ids, first.kl_labels) == "6+3=12 maybe<|im_end|>"
    assert tok.decode(first.kl_input_ids).startswith("<|im_start|>user\nWhat is 1+1?")
    assert stats.kept == 16


def test_cache_round_trips_every_meta_field(tok, data_dir, tmp_path):
    examples, stats = encode_pairwise(pairs_of("pairs", data_dir), tok, QWEN3, cutoff_len=128)
    attr = get_dataset_attrs(("feedback",), data_dir)[0]
    convs, tags = zip(*(to_feedback(attr, row, i) for i, row in enumerate(load_rows(attr))))
    feedback, _ = encode_feedback(convs, tags, tok, QWEN3, cutoff_len=128)
    for name, exs in (("pairs", examples), ("feedback", feedback)):
        cache.save(tmp_path / f"{name}.npz", exs, stats)
        loaded, _ = cache.load(tmp_path / f"{name}.npz")
        assert loaded == exs
    assert isinstance(loaded[0].kto_tag, bool)


BAD = [
    ({"file_name": "b.json", "formatting": "sharegpt", "columns": {"messages": "conversations"}},
     [{"conversations": [{"from": "human", "value": "a"}], "chosen": "x", "rejected": "y"}],
     r"dataset `b` is not a ranking dataset: preference stages \(rm, dpo\) need `\"ranking\": true`"),
    ({"file_name": "b.json", "ranking": True, "formatting": "sharegpt",
      "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}},
     [{"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}], "chosen": "x",
       "rejected": "y"}], r"dataset `b` row 0: the `conversations` of a ranking row must end with a user turn"),
    ({"file_name": "b.json", "ranking": True, "formatting": "sharegpt",
      "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}},
     [{"conversations": [{"from": "human", "value": "a"}], "chosen": "x"}],
     r"dataset `b` row 0: missing column `rejected` \(the `rejected` column\)"),
    ({"file_name": "b.json", "ranking": True, "formatting": "sharegpt",
      "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}},
     [{"conversations": [{"from": "human", "value": "a"}], "chosen": {"from": "gpt"}, "rejected": "y"}],
     r"dataset `b` row 0: the `chosen` reply must be a string or a message object with a string `value`"),
]


@pytest.mark.parametrize("entry,rows,message", BAD)
def test_bad_ranking_rows_fail_naming_dataset_row_and_column(entry, rows, message, tmp_path):
    (tmp_path / "b.json").write_text(json.dumps(rows))
    attr = parse_entry("b", entry, tmp_path, tmp_path / "dataset_info.json")
    with pytest.raises(ConfigError, match=message):
        to_pair(attr, load_rows(attr)[0], 0)


def test_feedback_needs_a_boolean_kto_tag(tmp_path):
    entry = {"file_name": "f.json", "formatting": "sharegpt", "columns": {"messages": "m", "kto_tag": "label"}}
    (tmp_path / "f.json").write_text(json.dumps([{"m": [{"from": "human", "value": "a"},
                                                         {"from": "gpt", "value": "b"}], "label": "yes"}]))
    attr = parse_entry("f", entry, tmp_path, tmp_path / "dataset_info.json")
    with pytest.raises(ConfigError, match=r"dataset `f` row 0: column `label` \(the `kto_tag` column\) must be bool"):
        to_feedback(attr, load_rows(attr)[0], 0)
    no_tag = parse_entry("f", {"file_name": "f.json", "formatting": "sharegpt", "columns": {"messages": "m"}},
                         tmp_path, tmp_path / "dataset_info.json")
    with pytest.raises(ConfigError, match=r"stage kto needs a `kto_tag` column"):
        to_feedback(no_tag, load_rows(no_tag)[0], 0)


def test_preview_shows_chosen_and_rejected(qwen2_model, data_dir, capsys):
    from tunesmith.cli import main

    assert main(["data", "preview", "--model_name_or_path", str(qwen2_model), "--stage", "dpo", "--dataset",
                 "pairs", "--dataset_dir", str(data_dir), "--template", "qwen3_nothink", "--num", "1",
                 "--no-color"]) == 0
    out = capsys.readouterr().out
    assert "[chosen]\n<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n⟦1+1=2<|im_end|>⟧" in out
    assert "[rejected]\n<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n⟦1+1=5 maybe<|im_end|>⟧" in out
