"""The YAML the web UI builds from its form is the file the CLI runs: saved, then read back by config.load, it
gives the Config the same keys give written by hand; defaults are not written; bad values are ConfigErrors."""

from __future__ import annotations

import dataclasses

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.config.load import build_config, load_config
from tunesmith.config.schema import DataArgs, FinetuningArgs
from tunesmith.webui.form import HF_DEFAULTS, build_values, form_fields, save_yaml, to_yaml, validate_yaml


def defaults() -> dict:
    return {f.key: f.default for f in form_fields()}


def test_saved_yaml_is_what_the_cli_reads(tmp_path, qwen2_model, data_dir):
    form = defaults() | {"model_name_or_path": str(qwen2_model), "template": "qwen3_nothink", "dataset": ["arith"],
                         "dataset_dir": str(data_dir), "finetuning_type": "lora", "lora_rank": 4.0,
                         "learning_rate": 1e-3, "max_steps": 3.0, "logging_steps": 1.0, "cutoff_len": 128.0,
                         "add_special_tokens": "<think>, </think>", "special_token_metrics": "true",
                         "output_dir": str(tmp_path / "out")}
    values = build_values(form, "report_to: none\nsave_strategy: no\n")
    path = tmp_path / "train.yaml"
    save_yaml(to_yaml(values), path)
    by_cli = load_config([str(path)])
    by_hand = {"model_name_or_path": str(qwen2_model), "template": "qwen3_nothink", "stage": "sft", "do_train": True,
               "finetuning_type": "lora", "dataset": "arith", "dataset_dir": str(data_dir), "lora_rank": 4,
               "learning_rate": 1e-3, "max_steps": 3, "logging_steps": 1, "cutoff_len": 128,
               "add_special_tokens": "<think>,</think>", "special_token_metrics": True,
               "output_dir": str(tmp_path / "out"), "report_to": "none", "save_strategy": "no"}
    expected = build_config({k: (v, "hand") for k, v in by_hand.items()})
    assert dataclasses.replace(by_cli, sources=()) == dataclasses.replace(expected, sources=())
    assert by_cli.tokens.add_special_tokens == ("<think>", "</think>")
    assert by_cli.training["save_strategy"] == "no"  # YAML's `no` stays the strategy name, as the CLI reads it


def test_defaults_are_not_written(tmp_path):
    values = build_values(defaults() | {"model_name_or_path": "m", "dataset": ["a", "b"]})
    assert values == {"model_name_or_path": "m", "stage": "sft", "do_train": True, "finetuning_type": "lora",
                      "dataset_dir": "data", "dataset": "a,b", "output_dir": "saves/run"}
    text = to_yaml(values)
    assert text.startswith("### model\nmodel_name_or_path: m\nstage: sft\ndo_train: true\n")
    assert "### dataset\ndataset_dir: data\ndataset: a,b\n" in text


def test_other_keys_win_and_bad_input_is_refused(tmp_path):
    base = defaults() | {"model_name_or_path": "m", "dataset": ["a"]}
    assert build_values(base, "max_steps: 7\nstage: dpo")["stage"] == "dpo"
    with pytest.raises(ConfigError, match="other keys: write `key: value` lines"):
        build_values(base, "- a list")
    with pytest.raises(ConfigError, match="`max_steps` must be a whole number"):
        build_values(base | {"max_steps": 2.5})
    with pytest.raises(ConfigError, match="`lora_alpha` must be a number"):
        build_values(base | {"lora_alpha": "sixteen"})
    with pytest.raises(ConfigError, match=r"x\.yaml.*lora_rnak"):
        validate_yaml(to_yaml(build_values(base, "lora_rnak: 4")), "x.yaml")
    path = tmp_path / "bad.yaml"
    with pytest.raises(ConfigError):
        save_yaml("model_name_or_path: m\nlearning_rate: fast\n", path)
    assert not path.exists()  # validated before it is written


def test_form_defaults_are_the_libraries_defaults():
    from transformers import TrainingArguments

    hf = {f.name: f.default for f in dataclasses.fields(TrainingArguments)}
    assert {k: hf[k] for k in HF_DEFAULTS} == HF_DEFAULTS
    by_key = {f.key: f for f in form_fields()}
    assert by_key["lora_rank"].default == FinetuningArgs().lora_rank
    assert by_key["cutoff_len"].default == DataArgs().cutoff_len
    assert by_key["dataset_dir"].default == DataArgs().dataset_dir
    assert by_key["init_special_tokens"].choices and by_key["lr_scheduler_type"].default == "linear"


def test_a_saved_config_loads_back_into_the_form(tmp_path):
    from tunesmith.webui.form import form_from_yaml

    text = ("model_name_or_path: Qwen/Qwen3-0.6B\nstage: dpo\ndo_train: true\nfinetuning_type: lora\n"
            "dataset: [dpo_en_demo, pairs]\ntemplate: qwen3_nothink\nlora_rank: 16\npref_beta: 0.2\n"
            "lr_scheduler_type: cosine\nspecial_token_metrics: false\noutput_dir: saves/dpo\n"
            "learning_rate: 5.0e-6\n")
    form, extra = form_from_yaml(text, "dpo.yaml")
    assert form["dataset"] == ["dpo_en_demo", "pairs"] and form["lora_rank"] == 16
    assert form["special_token_metrics"] == "false" and form["stage"] == "dpo"
    assert extra == "pref_beta: 0.2\n"  # a key the form does not show stays in the other-keys box
    rebuilt = build_values(form, extra)
    assert rebuilt["dataset"] == "dpo_en_demo,pairs" and rebuilt["dataset_dir"] == "data"  # the default, written
    same = lambda cfg: dataclasses.replace(cfg, sources=())  # noqa: E731
    assert same(validate_yaml(to_yaml(rebuilt), "x.yaml")) == same(validate_yaml(text, "x.yaml"))
