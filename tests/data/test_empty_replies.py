"""A dataset whose replies are all empty would train only end-of-turn tokens: refused before training (nothing
of it is cached, so a rerun is refused too)."""
from __future__ import annotations

import json

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.data.kinds import get_kind
from tunesmith.data.load import load_training_data
from tunesmith.model.load import load_tokenizer
from tunesmith.templates.builtin import get_template


def test_all_empty_replies_are_refused(qwen2_model, train_config, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESMITH_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "empty.json").write_text(json.dumps([{"instruction": f"q{i}", "input": "", "output": ""}
                                                     for i in range(4)]))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"empty": {"file_name": "empty.json"}}))
    cfg = train_config(qwen2_model, dataset="empty", dataset_dir=str(tmp_path))
    tok = load_tokenizer(cfg.model)
    for _ in range(2):  # nothing is cached for a refused dataset: a rerun is refused again
        with pytest.raises(ConfigError, match="dataset `empty`: every reply is empty"):
            load_training_data(cfg.data, get_kind("supervised"), tok, get_template("qwen3_nothink"), 0)
    # a prompt dataset (ppo) trains nothing from its replies: not refused
    prompts = load_training_data(cfg.data, get_kind("prompt"), tok, get_template("qwen3_nothink"), 0)
    assert len(prompts.train) == 4
