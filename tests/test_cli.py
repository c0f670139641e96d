"""The command line: help lists working commands; errors are one clear line and exit status 2."""

from __future__ import annotations

import subprocess
import sys

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
