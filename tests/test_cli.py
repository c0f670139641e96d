"""The command line: help lists working commands; errors are one clear line and exit status 2."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from tunesmith import __version__
from tunesmith.cli import COMMANDS, main


def test_help_lists_exactly_the_available_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ") and line.strip()]
    assert listed == list(COMMANDS)
    assert {"chat", "api", "export"} <= set(listed)


def test_version(capsys):
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == __version__


def test_unknown_command_suggests(capsys):
    assert main(["trian"]) == 2
    assert "did you mean 'train'" in capsys.readouterr().err


def test_bad_config_is_one_line_without_traceback(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model_name_or_path: m\ndataset: a\noutput_dir: o\ntemplate: qwen\nlearnig_rate: 1\n")
    proc = subprocess.run([sys.executable, "-m", "tunesmith.cli", "train", str(cfg)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{cfg}: unknown key `learnig_rate`; did you mean learning_rate" in proc.stderr


def test_missing_model_fails_clearly(tmp_path, data_dir, capsys):
    code = main(["train", "--model_name_or_path", "someone/not-here", "--dataset", "arith", "--dataset_dir",
                 str(data_dir), "--template", "qwen", "--output_dir", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "model `someone/not-here` was not found" in err and "never downloads" in err


def test_tiny_model_command_builds_a_loadable_model(tmp_path, capsys):
    assert main(["tiny-model", str(tmp_path / "m"), "--family", "llama3", "--vocab-size", "400"]) == 0
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(tmp_path / "m").config.model_type == "llama"


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help(name, flag, capsys):
    assert main([name, flag]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: tunesmith {name}")
    assert "unknown key" not in out


def test_train_help_lists_the_keys_by_section_from_the_schema(capsys):
    from dataclasses import fields

    from tunesmith.config.help import TRAIN_SECTIONS, show_default
    from tunesmith.config.hf_keys import HF_TRAINING_KEYS
    from tunesmith.config.schema import SECTIONS

    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for section, _ in TRAIN_SECTIONS:
        assert any(line.startswith(f"{section} keys:") for line in lines), section
        for f in fields(SECTIONS[section]):
            default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
            head = [line for line in lines if line.startswith(f"  {f.name} = {show_default(default)}")]
            assert head, f.name
            first_words = " ".join(f.metadata["help"].split()[:4])
            assert first_words in " ".join(out.split()), f.name
    assert "transformers TrainingArguments keys (" in out
    flat = " ".join(out.split())
    assert all(key in flat for key in HF_TRAINING_KEYS)
    assert "save_strategy (no | steps | epoch | best)" in flat
    assert "  stage = sft  (pt | sft | rm | ppo | dpo | kto | grpo)" in lines


def test_chat_help_lists_what_chat_reads(capsys):
    assert main(["chat", "-h"]) == 0
    out = capsys.readouterr().out
    assert "--query TEXT" in out and "infer keys:" in out and "generating keys:" in out
    assert "  template = null" in out and "  cutoff_len" not in out and "TrainingArguments" not in out


def test_help_forms(capsys):
    assert main(["help", "train"]) == 0
    by_word = capsys.readouterr().out
    assert main(["train", "cfg.yaml", "--help"]) == 0
    assert capsys.readouterr().out == by_word
    assert main(["data", "preview", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: tunesmith data preview")


def test_help_needs_no_torch():
    code = ("import sys; from tunesmith.cli import main; main(['train', '--help']); main(['api', '--help']); "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("[]")


def test_an_os_error_is_one_line_naming_the_path(qwen2_model, data_dir, tmp_path, capsys):
    from tunesmith.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code = main(["train", "--model_name_or_path", str(qwen2_model), "--dataset", "arith", "--dataset_dir",
                 str(data_dir), "--template", "qwen3_nothink", "--output_dir", str(blocker / "out"), "--max_steps", "1",
                 "--report_to", "none", "--disable_tqdm", "true"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) >= 1 and err[-1].startswith("tunesmith: error:") and str(blocker) in err[-1]
    assert "Traceback" not in "\n".join(err)
