"""The tokenized cache is used when nothing changed and invalidated when data, tokenizer, template or
cutoff change."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from tunesmith.data.load import load_training_data
from tunesmith.model.load import load_tokenizer
from tunesmith.data.kinds import get_kind
from tunesmith.templates.builtin import get_template


@pytest.fixture()
def setup(tmp_path, data_dir, qwen2_model, train_config, monkeypatch):
    monkeypatch.setenv("TUNESMITH_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "data"
    shutil.copytree(data_dir, root)

    def run(caplog, model=qwen2_model, template="qwen3_nothink", **kw):
        cfg = train_config(model, dataset_dir=str(root), template=template, **kw)
        tok = load_tokenizer(cfg.model)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="tunesmith"):
            data = load_training_data(cfg.data, get_kind("supervised"), tok, get_template(template), 0,
                                      pack=bool(cfg.data.packing or cfg.data.neat_packing))
        return data, "loaded from cache" in caplog.text

    return run, root


def test_cache_hit_gives_identical_examples(setup, caplog):
    run, _ = setup
    first, hit1 = run(caplog)
    second, hit2 = run(caplog)
    assert (hit1, hit2) == (False, True)
    assert [(e.input_ids, e.labels) for e in first.train] == [(e.input_ids, e.labels) for e in second.train]
    assert first.stats.trained_tokens == second.stats.trained_tokens


def test_cache_is_invalidated_by_each_input(setup, caplog, llama3_model):
    run, root = setup
    run(caplog)
    assert run(caplog)[1]
    assert not run(caplog, cutoff_len=64)[1]                 # cutoff changed
    assert not run(caplog, template="chatml")[1]             # template changed
    assert not run(caplog, model=llama3_model, template="llama3")[1]  # tokenizer changed
    assert not run(caplog, overwrite_cache=True)[1]          # forced
    rows = json.loads((root / "arith.json").read_text())
    rows[0]["output"] = "changed"
    (root / "arith.json").write_text(json.dumps(rows))
    assert not run(caplog)[1]                                # data changed
    assert run(caplog)[1]
