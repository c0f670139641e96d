"""streaming: true encodes lazily and trains on exactly the examples the in-memory path produces."""

from __future__ import annotations

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.data.load import load_training_data
from tunesmith.model.load import load_tokenizer
from tunesmith.data.kinds import get_kind
from tunesmith.templates.builtin import get_template
from tunesmith.types import PackedRow
from tunesmith.train.run import run_training


def encoded(cfg):
    tok = load_tokenizer(cfg.model)
    pack = bool(cfg.data.packing or cfg.data.neat_packing)  # rows of cutoff_len only when asked for
    return load_training_data(cfg.data, get_kind("supervised"), tok, get_template(cfg.data.template), 0, pack=pack)


def test_stream_yields_the_same_examples_as_memory(qwen2_model, train_config):
    kw = dict(dataset="arith,minimind", preprocessing_batch_size=3, packing=False)
    memory = encoded(train_config(qwen2_model, **kw)).train
    stream = list(encoded(train_config(qwen2_model, streaming=True, buffer_size=4, **kw)).train)
    as_tuples = lambda items: sorted((tuple(i["input_ids"]) if isinstance(i, dict) else tuple(i.input_ids))  # noqa
                                     for i in items)
    assert as_tuples(stream) == as_tuples(memory)
    assert [tuple(s["input_ids"]) for s in stream] != [tuple(m.input_ids) for m in memory]  # buffer shuffled


def test_stream_holds_out_the_first_examples_for_evaluation(qwen2_model, train_config):
    data = encoded(train_config(qwen2_model, streaming=True, val_size=2, packing=False))
    assert len(data.eval) == 2 and len(list(data.train)) == 6
    packed = encoded(train_config(qwen2_model, streaming=True, val_size=2, packing=True))
    held_out = {tuple(ex.input_ids) for ex in packed.eval}
    assert len(held_out) == 2 and not any(isinstance(ex, PackedRow) for ex in packed.eval)
    rows = list(packed.train)
    assert rows and all("position_ids" in row for row in rows)
    assert sum(row["sequences"] for row in rows) == 6  # every other example, packed
    with pytest.raises(ConfigError, match="must be a count"):
        encoded(train_config(qwen2_model, streaming=True, val_size=0.25))


def test_streaming_training_runs_and_needs_max_steps(qwen2_model, train_config):
    result = run_training(train_config(qwen2_model, streaming=True, max_steps=4, dataset="pt", stage="pt"))
    assert result.global_step == 4
    with pytest.raises(ConfigError, match="`streaming: true` needs `max_steps` > 0"):
        train_config(qwen2_model, streaming=True, max_steps=-1, num_train_epochs=1)
