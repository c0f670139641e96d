"""Values transformers would misread or fail on with a traceback are refused before anything loads, naming the
key; a key written twice in a config file is refused naming its line; a config file that is not UTF-8 says so."""

from __future__ import annotations

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.config.load import build_config, load_config

BASE = {"model_name_or_path": "m", "stage": "sft", "do_train": True, "dataset": "a", "template": "qwen",
        "output_dir": "out"}


def raw(**kw):
    return {k: (v, "test.yaml") for k, v in {**BASE, **kw}.items()}


STEPS = r"positive: a count of steps, or a fraction of the run's steps below 1"


@pytest.mark.parametrize("key,value,message", [
    ("max_steps", -5, r"`max_steps` must be a positive number of steps, or -1 \(unset: `num_train_epochs` decides\), "
                      r"got -5"),
    ("max_steps", -2, r"`max_steps` must be a positive number of steps, or -1 .*, got -2"),
    ("num_train_epochs", -1, r"`num_train_epochs` must be >= 0, got -1"),
    ("num_train_epochs", "inf", r"`num_train_epochs` must be >= 0, got inf"),
    ("learning_rate", "nan", r"`learning_rate` must be >= 0, got nan"),
    ("learning_rate", float("inf"), r"`learning_rate` must be >= 0, got inf"),
    ("learning_rate", -1e-5, r"`learning_rate` must be >= 0, got -1e-05"),
    ("warmup_steps", -3, r"`warmup_steps` must be >= 0: a count of steps, or a fraction of the run's steps below 1, "
                         r"got -3"),
    ("save_steps", -1, rf"`save_steps` must be {STEPS}, got -1"),
    ("logging_steps", 0, rf"`logging_steps` must be {STEPS}, got 0"),
    ("eval_steps", -10, rf"`eval_steps` must be {STEPS}, got -10"),
    ("gradient_accumulation_steps", 0, r"`gradient_accumulation_steps` must be positive, got 0"),
    ("per_device_train_batch_size", -1, r"`per_device_train_batch_size` must be positive, got -1"),
    ("per_device_eval_batch_size", 0, r"`per_device_eval_batch_size` must be positive, got 0"),
    ("eval_accumulation_steps", 0, r"`eval_accumulation_steps` must be positive, got 0"),
    ("weight_decay", -0.1, r"`weight_decay` must be >= 0, got -0.1"),
    ("max_grad_norm", -1, r"`max_grad_norm` must be >= 0 \(0 turns gradient clipping off\), got -1"),
    ("save_total_limit", 0, r"`save_total_limit` must be a positive number of checkpoints to keep \(leave it out, or "
                            r"null, to keep them all\), got 0"),
    ("save_total_limit", -1, r"`save_total_limit` must be a positive number of checkpoints to keep .*, got -1"),
    ("adam_beta2", 1.0, r"`adam_beta2` must be in \[0, 1\), got 1"),
    ("dataloader_num_workers", -1, r"`dataloader_num_workers` must be >= 0, got -1"),
    ("warmup_ratio", 1.5, r"`warmup_ratio` must be in \[0, 1\), got 1.5"),
    ("warmup_ratio", -0.1, r"`warmup_ratio` must be in \[0, 1\), got -0.1"),
    ("warmup_ratio", "nan", r"`warmup_ratio` must be in \[0, 1\), got 'nan'"),
])
def test_out_of_range_training_values_are_refused(key, value, message):
    with pytest.raises(ConfigError, match="^test.yaml: " + message + "$"):
        build_config(raw(**{key: value}))


def test_warmup_longer_than_the_run_is_refused():
    with pytest.raises(ConfigError, match=r"^test.yaml: `warmup_steps` \(20\) is not below `max_steps` \(10\): the "
                                          r"learning rate would still be warming up when training stops"):
        build_config(raw(max_steps=10, warmup_steps=20))


@pytest.mark.parametrize("values", [
    {"max_steps": -1}, {"max_steps": 0}, {"max_steps": 5, "warmup_steps": 4}, {"warmup_ratio": 0.1, "max_steps": 5},
    {"save_total_limit": None}, {"save_total_limit": 1}, {"eval_steps": None}, {"logging_steps": 0.1},
    {"learning_rate": 0}, {"max_grad_norm": 0}, {"weight_decay": 0.0}, {"num_train_epochs": 0, "max_steps": 3},
])
def test_values_in_range_pass(values):
    cfg = build_config(raw(**values))
    assert all(cfg.training.get(k, v) == v for k, v in values.items() if k != "warmup_ratio")


def test_negative_max_steps_is_refused_from_a_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model_name_or_path: m\ndataset: a\noutput_dir: o\ntemplate: qwen\nmax_steps: -5\n")
    with pytest.raises(ConfigError, match=rf"^{path}: `max_steps` must be a positive number of steps, or -1"):
        load_config([str(path)])


# Duplicate keys: YAML keeps the last value silently; refused naming the line.
def test_a_key_written_twice_is_refused_naming_its_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model_name_or_path: m\nlearning_rate: 1e-4\ndataset: a\nlearning_rate: 1e-3\n")
    with pytest.raises(ConfigError, match=rf"^{path}:4: invalid YAML: duplicate key `learning_rate` \(first on line "
                                          r"2\): each key may appear once; remove one$"):
        load_config([str(path)])


@pytest.mark.parametrize("text,line", [("deepspeed:\n  a: 1\n  b: 2\n  a: 3\n", 4), ("vllm_config: {a: 1, a: 2}\n", 1)])
def test_a_key_written_twice_in_a_nested_mapping_is_refused(tmp_path, text, line):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"^{path}:{line}: invalid YAML: duplicate key `a`"):
        load_config([str(path)])


def test_merged_keys_may_be_overridden(tmp_path):
    from tunesmith.config.load import read_file

    path = tmp_path / "c.yaml"
    path.write_text("base: &b {x: 1, y: 2}\nvllm_config:\n  <<: *b\n  x: 3\n")
    assert read_file(path)["vllm_config"] == {"x": 3, "y": 2}


def test_a_key_written_twice_in_json_is_refused(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"model_name_or_path": "m",\n "max_steps": 5,\n "max_steps": 10}\n')
    with pytest.raises(ConfigError, match=rf"^{path}: duplicate key `max_steps` \(lines 2, 3\): each key may appear "
                                          r"once; remove one$"):
        load_config([str(path)])


def test_a_config_that_is_not_utf8_names_the_line_and_byte(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"model_name_or_path: m\nrun_name: caf\xe9\n")
    with pytest.raises(ConfigError, match=rf"^{path}:2: not UTF-8 text: byte 0xe9 at byte offset 35 \(invalid "
                                          r"continuation byte\); save the file as UTF-8"):
        load_config([str(path)])


def test_a_config_with_a_bom_is_read(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xef\xbb\xbfmodel_name_or_path: m\ndataset: a\noutput_dir: o\ntemplate: qwen\n")
    assert load_config([str(path)]).model.model_name_or_path == "m"
