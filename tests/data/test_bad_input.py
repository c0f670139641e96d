"""Every kind of bad data fails with one clear message naming file/line or row/column, and nothing is
written to output_dir."""

from __future__ import annotations

import json

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.train.run import run_training


CASES = [
    ("broken.json", '[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c" "output": "d"}\n]', None,
     r"broken.json:3: invalid JSON"),
    ("broken.jsonl", '{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": "b"}\n{"instruction": }\n',
     None, r"broken.jsonl:3: invalid JSON line"),
    ("missing.json", json.dumps([{"instruction": "a", "output": "b"}, {"instruction": "c", "answer": "d"}]), None,
     r"dataset `bad` row 1: missing column `output` \(the `response` column\); the row has: answer, instruction"),
    ("typed.json", json.dumps([{"instruction": "a", "output": ["b"]}]), None,
     r"dataset `bad` row 0: column `output` \(the `response` column\) must be str or int or float, got list"),
    ("empty.json", "[]", None, r"dataset `bad` \(.*empty.json\) is empty"),
    ("order.json", json.dumps([{"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]}]),
     {"formatting": "sharegpt"},
     r"dataset `bad` row 0: turn 1 is `human` \(user\) but a assistant/function turn was expected"),
    ("roles.json", json.dumps([{"conversations": [{"from": "human", "value": "a"}, {"from": "bot", "value": "b"}]}]),
     {"formatting": "sharegpt"}, r"dataset `bad` row 0: turn 1 has unknown role 'bot'"),
    ("open.json", json.dumps([{"conversations": [{"from": "human", "value": "a"}]}]), {"formatting": "sharegpt"},
     r"dataset `bad` row 0: the conversation ends with a user turn"),
    ("nope.json", None, None, r"dataset `bad`: file .*nope.json not found"),
]


@pytest.mark.parametrize("filename,content,entry,message", CASES, ids=[c[0] for c in CASES])
def test_bad_data_fails_clearly_and_writes_nothing(filename, content, entry, message, tmp_path, qwen2_model,
                                                   train_config):
    root = tmp_path / "data"
    root.mkdir()
    if content is not None:
        (root / filename).write_text(content, encoding="utf-8")
    (root / "dataset_info.json").write_text(json.dumps({"bad": {"file_name": filename, **(entry or {})}}))
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=message):
        run_training(train_config(qwen2_model, dataset="bad", dataset_dir=str(root), output_dir=str(out)))
    assert not out.exists()


def test_unknown_dataset_suggests_names(data_dir, qwen2_model, train_config):
    with pytest.raises(ConfigError, match=r"dataset `arihm` is not in .*dataset_info.json; did you mean arith"):
        run_training(train_config(qwen2_model, dataset="arihm"))


def test_hub_dataset_fails_offline_with_a_clear_message(data_dir, qwen2_model, train_config, hf_cache, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"^dataset `remote` \(`hf_hub_url` `someone/some-data`, split `train`\) is "
                                          r"not available: downloads are off \(HF_HUB_OFFLINE=1.*\), and it is not in "
                                          r"the local Hugging Face cache .* `hf download someone/some-data --repo-type "
                                          r"dataset`"):
        run_training(train_config(qwen2_model, dataset="remote", output_dir=str(out)))
    assert not out.exists()


def test_bad_registry_entry(tmp_path, qwen2_model, train_config):
    root = tmp_path / "data"
    root.mkdir()
    (root / "dataset_info.json").write_text(json.dumps({"x": {"file_name": "x.json", "colums": {}}}))
    with pytest.raises(ConfigError, match=r"dataset_info.json: dataset `x`: unknown field `colums`; did you mean "
                                          r"`columns`"):
        run_training(train_config(qwen2_model, dataset="x", dataset_dir=str(root)))


def test_cutoff_too_small_drops_everything(qwen2_model, train_config):
    with pytest.raises(ConfigError, match=r"no example has a trained token after encoding \(8 of 8 dropped; "
                                          r"is `cutoff_len` \(2\) too small\?\)"):
        run_training(train_config(qwen2_model, cutoff_len=2))
