"""YAML 1.1 reads yes/no/on/off as booleans. A key that takes text keeps them as text (`save_strategy: no` is the
strategy "no"), a key that takes true/false reads them as booleans, in a file and on the command line alike."""

from __future__ import annotations

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.config.load import load_config

BASE = "model_name_or_path: m\ndataset: a\noutput_dir: o\ntemplate: qwen\n"


def config_file(tmp_path, text: str) -> str:
    """BASE with ``text`` added; a key of BASE that ``text`` sets again is left out (a key may appear once)."""
    keys = {line.split(":")[0] for line in text.splitlines()}
    path = tmp_path / "c.yaml"
    path.write_text("".join(line + "\n" for line in BASE.splitlines() if line.split(":")[0] not in keys) + text)
    return str(path)


@pytest.mark.parametrize("word", ["no", "No", "NO"])
def test_strategy_no_in_a_file_is_the_strategy(tmp_path, word):
    cfg = load_config([config_file(tmp_path, f"save_strategy: {word}\neval_strategy: {word}\n"
                                             f"logging_strategy: {word}\n")])
    assert (cfg.training["save_strategy"], cfg.training["eval_strategy"], cfg.training["logging_strategy"]) == \
        ("no", "no", "no")


@pytest.mark.parametrize("form", [["save_strategy=no"], ["--save_strategy", "no"], ["--save_strategy=no"],
                                  ["evaluation_strategy=no"]])
def test_strategy_no_on_the_command_line_is_the_strategy(tmp_path, form):
    cfg = load_config([config_file(tmp_path, "save_strategy: steps\n"), *form])
    key = "eval_strategy" if form[0].startswith("evaluation") else "save_strategy"
    assert cfg.training[key] == "no"


@pytest.mark.parametrize("word", ["no", "off", "yes", "on", "y", "n", "On", "NO"])
def test_text_keys_keep_the_words(tmp_path, word):
    cfg = load_config([config_file(tmp_path, f"run_name: {word}\ntemplate: {word}\n"), f"hub_model_id={word}"])
    assert cfg.training["run_name"] == word and cfg.data.template == word and cfg.training["hub_model_id"] == word


@pytest.mark.parametrize("word,flag", [("yes", True), ("on", True), ("y", True), ("no", False), ("off", False),
                                       ("n", False), ("Off", False), ("true", True), ("false", False)])
def test_boolean_keys_read_the_words(tmp_path, word, flag):
    cfg = load_config([config_file(tmp_path, f"packing: {word}\ntf32: {word}\n"), f"plot_loss={word}",
                       "--bf16", word])
    assert cfg.data.packing is flag and cfg.training["tf32"] is flag
    assert cfg.finetuning.plot_loss is flag and cfg.training["bf16"] is flag


def test_values_nested_in_a_mapping_keep_yaml_booleans(tmp_path):
    cfg = load_config([config_file(tmp_path, "gradient_checkpointing_kwargs: {use_reentrant: no}\n")])
    assert cfg.training["gradient_checkpointing_kwargs"] == {"use_reentrant": False}


def test_switches_of_unsupported_options_read_no_as_off(tmp_path):
    cfg = load_config([config_file(tmp_path, "use_unsloth: no\n"), "use_galore=off"])
    assert "use_unsloth" not in cfg.training and "use_galore" not in cfg.training


@pytest.mark.parametrize("text,value", [("resume_from_checkpoint: no", False), ("resume_from_checkpoint: yes", True),
                                        ("include_num_input_tokens_seen: no", False), ("fsdp: true", True)])
def test_keys_that_take_a_flag_or_text_read_the_words_as_flags(tmp_path, text, value):
    key = text.split(":")[0]
    assert load_config([config_file(tmp_path, text + "\n")]).training[key] is value


def test_wrong_strategy_fails_before_anything_loads(tmp_path):
    with pytest.raises(ConfigError, match=r"^command line: `save_strategy` must be one of no, steps, epoch, best; "
                                          r"got 'off'$"):
        load_config([config_file(tmp_path, ""), "save_strategy=off"])
    with pytest.raises(ConfigError, match=r"`lr_scheduler_type` must be one of .*; got 'cosin'; did you mean cosine"):
        load_config([config_file(tmp_path, "lr_scheduler_type: cosin\n")])


def test_a_boolean_strategy_is_refused_clearly(tmp_path):
    with pytest.raises(ConfigError, match=r"`save_strategy` must be a name written as text \(e.g. no, steps, epoch\)"):
        load_config([config_file(tmp_path, "save_strategy: false\n")])
