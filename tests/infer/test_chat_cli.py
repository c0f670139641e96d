"""`tunesmith chat`: multi-turn over stdin with clear and exit, the one-shot --query form, LLaMA-Factory's
inference config, and one-line usage errors."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tunesmith.cli import main
from tunesmith.config.errors import ConfigError
from tunesmith.config.load import build_config
from tunesmith.infer.chat import chat_loop, chat_once
from tunesmith.infer.backends import create_engine

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "llamafactory"


class RecordingEngine:
    """Wraps an engine and records the messages each reply was asked for."""

    def __init__(self, engine):
        self.engine, self.calls = engine, []

    def stream(self, messages, **overrides):
        self.calls.append(messages)
        return self.engine.stream(messages, **overrides)


@pytest.fixture(scope="module")
def engine(lora_run):
    cfg = build_config({"model_name_or_path": (str(lora_run), "test"), "do_sample": (False, "test"),
                        "max_new_tokens": (6, "test")}, purpose="infer")
    return create_engine(cfg)


def test_history_grows_and_clear_forgets_it(engine):
    recorder = RecordingEngine(engine)
    out = io.StringIO()
    code = chat_loop(recorder, system="Be brief.", inp=io.StringIO("What is 1+1?\nWhat is 2+2?\nclear\n\nWhat is 3+3?\n"
                                                                   "exit\nnever read\n"), out=out)
    assert code == 0
    first, second, third = recorder.calls  # the empty line asked nothing; nothing after exit was read
    assert [m["role"] for m in first] == ["system", "user"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[1]["content"] == "What is 1+1?" and second[3]["content"] == "What is 2+2?"
    assert second[2]["content"] == engine.chat(first).text  # the streamed reply went into the history
    assert [m["content"] for m in third] == ["Be brief.", "What is 3+3?"]
    text = out.getvalue()
    assert text.count("Assistant: ") == 3 and "History has been removed." in text


def test_chat_command_reads_stdin_to_the_end(lora_run):
    proc = subprocess.run([sys.executable, "-m", "tunesmith.cli", "chat", str(lora_run), "do_sample=false",
                           "max_new_tokens=6"], input="What is 1+1?\nclear\nWhat is 2+2?\n", capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("Assistant: ") == 2 and "History has been removed." in proc.stdout
    assert "Traceback" not in proc.stderr


def test_query_prints_only_the_reply(lora_run, engine):
    proc = subprocess.run([sys.executable, "-m", "tunesmith.cli", "chat", str(lora_run), "--query", "What is 1+1?",
                           "do_sample=false", "max_new_tokens=6"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    expected = engine.chat([{"role": "user", "content": "What is 1+1?"}]).text
    assert proc.stdout == expected + "\n"


def test_llamafactory_inference_config_runs_unchanged(lora_run, qwen2_model, tmp_path, monkeypatch, capsys):
    shutil.copytree(lora_run, tmp_path / "saves/qwen3-4b/lora/sft")
    config = tmp_path / "qwen3_lora_sft.yaml"
    config.write_text((FIXTURES / "inference/qwen3_lora_sft.yaml").read_text().replace("MODEL_PATH",
                                                                                      str(qwen2_model)))
    monkeypatch.chdir(tmp_path)
    assert main(["chat", config.name, "--query", "What is 1+1?", "max_new_tokens=4"]) == 0
    assert capsys.readouterr().out.endswith("\n")


def test_llamafactory_vllm_config_fails_clearly(qwen2_model, tmp_path, capsys):
    config = tmp_path / "llama3_vllm.yaml"
    config.write_text((FIXTURES / "inference/llama3_vllm.yaml").read_text().replace("MODEL_PATH", str(qwen2_model)))
    assert main(["chat", str(config), "--query", "hi"]) == 2
    assert "needs the vllm package" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["chat"], "usage: tunesmith chat"),
    (["chat", "model_name_or_path=m", "--query"], "--query needs a value"),
    (["chat", "missing.yaml"], "config file not found: missing.yaml"),
    (["chat", "model_name_or_path=m", "temprature=0.1"], "unknown key `temprature`; did you mean temperature"),
    (["chat", "model_name_or_path=someone/not-here", "--query", "hi"], "model `someone/not-here` was not found"),
])
def test_usage_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # (log lines may come before it)
    assert last.startswith("tunesmith: error: ") and message in last


def test_a_too_long_turn_is_reported_and_the_session_goes_on(engine, capsys):
    out = io.StringIO()
    assert chat_loop(engine, inp=io.StringIO("x " * 3000 + "\nclear\nWhat is 1+1?\n"), out=out) == 0
    text = out.getvalue()
    assert "this model's context is" in text and text.count("Assistant: ") == 2
    with pytest.raises(ConfigError, match="--query: the prompt has"):
        chat_once(engine, "x " * 3000, out=io.StringIO())


def test_a_line_that_is_not_utf8_is_reported_and_the_session_goes_on(engine):
    """Bad bytes spoil only their own line, whether the stream hands over bytes (decoded line by line) or text
    decoded with errors="surrogateescape" (how Python reads stdin in a C/POSIX locale)."""
    raw = b"What is 1+1?\n\xff\xfe bad \xc3\n\xed\xa0\x80\nWhat is 2+2?\n"
    for inp in (io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8"),
                io.StringIO(raw.decode("utf-8", "surrogateescape")),
                io.StringIO("What is 1+1?\nlone \ud800 surrogate\nWhat is 2+2?\n")):
        recorder = RecordingEngine(engine)
        out = io.StringIO()
        assert chat_loop(recorder, inp=inp, out=out) == 0
        first, second = recorder.calls  # the bad lines asked nothing; the history went on
        assert [m["content"] for m in second] == ["What is 1+1?", first_reply(engine), "What is 2+2?"]
        text = out.getvalue()
        assert text.count("Assistant: ") == 2 and "nothing was sent, type it again" in text
    byte_out = io.StringIO()
    chat_loop(engine, inp=io.TextIOWrapper(io.BytesIO(b"\xff\xfe bad\nexit\n"), encoding="utf-8"), out=byte_out)
    assert "[this line is not valid UTF-8 text: byte 0xff at position 0; nothing was sent" in byte_out.getvalue()
    assert "\ufffd\ufffd bad" in byte_out.getvalue()  # the line is shown as read
    lone_out = io.StringIO()
    chat_loop(engine, inp=io.StringIO("lone \ud800\nexit\n"), out=lone_out)
    assert "[this line is not valid Unicode text: it holds a lone surrogate (U+D800) at character 5;" in \
        lone_out.getvalue()
    with pytest.raises(ConfigError, match="--query is not valid Unicode text"):
        chat_once(engine, "bad \udcff", out=io.StringIO())


def first_reply(engine) -> str:
    return engine.chat([{"role": "user", "content": "What is 1+1?"}]).text


def test_chat_command_survives_a_line_that_is_not_utf8(lora_run):
    for encoding in (None, "utf-8:strict"):  # stdin's default error handler depends on the locale
        env = {k: v for k, v in os.environ.items() if k != "PYTHONIOENCODING"}
        if encoding:
            env["PYTHONIOENCODING"] = encoding
        proc = subprocess.run([sys.executable, "-m", "tunesmith.cli", "chat", str(lora_run), "do_sample=false",
                               "max_new_tokens=4"], input=b"What is 1+1?\n\xff\xfe bad\nWhat is 2+2?\n",
                              capture_output=True, timeout=300, env=env)
        stdout, stderr = proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
        assert proc.returncode == 0, stderr
        assert stdout.count("Assistant: ") == 2 and "is not valid UTF-8 text: byte 0xff" in stdout
        assert "Traceback" not in stderr
