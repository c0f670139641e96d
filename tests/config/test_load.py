"""Config loading: files, overrides, LLaMA-Factory key names, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.config.load import build_config, load_config

BASE = {"model_name_or_path": "m", "stage": "sft", "do_train": True, "dataset": "a", "template": "qwen",
        "output_dir": "out"}


def raw(**kw):
    return {k: (v, "test.yaml") for k, v in {**BASE, **kw}.items()}


def test_yaml_file_then_overrides_win(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("model_name_or_path: m\ndataset: a,b\noutput_dir: o\ntemplate: qwen\n"
                        "learning_rate: 1.0e-4\nlora_target: q_proj, v_proj\n")
    cfg = load_config([str(cfg_file), "learning_rate=5e-5", "--max_steps", "7", "--do_train"])
    assert cfg.data.dataset == ("a", "b")
    assert cfg.finetuning.lora_target == ("q_proj", "v_proj")
    assert cfg.training["learning_rate"] == 5e-5  # "5e-5" is a YAML string; coerced to float
    assert cfg.training["max_steps"] == 7 and cfg.training["do_train"] is True


def test_json_config(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({**BASE, "finetuning_type": "freeze", "freeze_trainable_layers": -2}))
    cfg = load_config([str(path)])
    assert cfg.finetuning.finetuning_type == "freeze" and cfg.finetuning.freeze_trainable_layers == -2


def test_plain_argv():
    cfg = load_config(["--model_name_or_path", "m", "--dataset", "a", "--output_dir", "o", "--template", "qwen",
                       "--lora_rank", "4", "--bf16", "true"])
    assert cfg.finetuning.lora_rank == 4 and cfg.training["bf16"] is True


def test_warmup_ratio_becomes_fractional_warmup_steps():
    cfg = build_config(raw(warmup_ratio=0.1))
    assert cfg.training["warmup_steps"] == 0.1


def test_unknown_key_names_closest_valid_keys():
    with pytest.raises(ConfigError, match=r"test.yaml: unknown key `lerning_rate`; did you mean learning_rate"):
        build_config(raw(lerning_rate=1e-4))


def test_unsupported_llamafactory_key_says_so():
    with pytest.raises(ConfigError, match=r"`use_unsloth` is a LLaMA-Factory option that tunesmith does not support"):
        build_config(raw(use_unsloth=True))


@pytest.mark.parametrize("key,value", [("use_galore", False), ("use_unsloth", "false"),
                                       ("quantization_bit", None), ("upcast_layernorm", False)])
def test_unsupported_llamafactory_option_left_off_is_accepted(key, value):
    cfg = build_config(raw(**{key: value}))
    assert key not in cfg.training


@pytest.mark.parametrize("overrides,expected", [
    ({}, {}),  # tunesmith's default: no activation checkpointing
    ({"disable_gradient_checkpointing": False}, {"gradient_checkpointing": True,
                                                 "gradient_checkpointing_kwargs": {"use_reentrant": True}}),
    ({"disable_gradient_checkpointing": False, "use_reentrant_gc": False},
     {"gradient_checkpointing": True, "gradient_checkpointing_kwargs": {"use_reentrant": False}}),
    ({"disable_gradient_checkpointing": True}, {"gradient_checkpointing": False}),
    ({"disable_gradient_checkpointing": True, "gradient_checkpointing": True},  # the explicit key wins
     {"gradient_checkpointing": True, "gradient_checkpointing_kwargs": {"use_reentrant": True}}),
])
def test_llamafactory_gradient_checkpointing_switch(overrides, expected):
    from tunesmith.train.plan import checkpointing_arguments

    assert checkpointing_arguments(build_config(raw(**overrides))) == expected


@pytest.mark.parametrize("key,value,message", [
    ("lora_rank", "eight", r"`lora_rank` must be an integer, got 'eight'"),
    ("learning_rate", "fast", r"`learning_rate` must be a number"),
    ("do_train", "maybe", r"`do_train` must be true or false"),
    ("finetuning_type", "lorra", r"must be one of full, freeze, lora, oft; got 'lorra'; did you mean lora"),
    ("stage", "bco", r"must be one of pt, sft, rm, ppo, dpo, kto, grpo; got 'bco'"),
    ("lora_rank", 0, r"`lora_rank` must be positive"),
    ("cutoff_len", -1, r"`cutoff_len` must be positive"),
    ("lora_dropout", 1.5, r"`lora_dropout` must be in \[0, 1\)"),
    ("warmup_ratio", 2, r"`warmup_ratio` must be in \[0, 1\)"),
])
def test_bad_values_fail_clearly(key, value, message):
    with pytest.raises(ConfigError, match=message):
        build_config(raw(**{key: value}))


def test_cross_field_rules():
    with pytest.raises(ConfigError, match="`freeze_trainable_layers` must be"):
        build_config(raw(finetuning_type="freeze", freeze_trainable_layers=0))
    with pytest.raises(ConfigError, match="set only one of `bf16` and `fp16`"):
        build_config(raw(bf16=True, fp16=True))
    with pytest.raises(ConfigError, match="`adapter_name_or_path` needs `finetuning_type: lora`"):
        build_config(raw(finetuning_type="full", adapter_name_or_path="a"))
    with pytest.raises(ConfigError, match="`dataset` is required"):
        build_config({k: v for k, v in raw().items() if k != "dataset"})
    with pytest.raises(ConfigError, match="`model_name_or_path` is required"):
        build_config({k: v for k, v in raw().items() if k != "model_name_or_path"})


def test_invalid_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_name_or_path: m\ndataset: [a,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: invalid YAML"):
        load_config([str(bad)])


def test_validation_happens_before_torch_is_imported(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("model_name_or_path: m\ndataset: a\noutput_dir: o\ntemplate: qwen\n")
    code = ("import sys; from tunesmith.config.load import load_config; load_config([sys.argv[1]]); "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(cfg_file)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
