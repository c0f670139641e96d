"""Terminal chat: multi-turn, streamed, with `clear` (forget the history) and `exit` commands. A line that is not
valid text (bytes that are not UTF-8) is reported and skipped; the session goes on."""

from __future__ import annotations

import sys
from typing import TextIO

from ..config.errors import ConfigError
from .engine import Engine, InvalidRequest, text_problem

CLEAR = ("clear", "/clear")
EXIT = ("exit", "quit", "/exit", "/quit")
WELCOME = "Chat with the model: `clear` forgets the history, `exit` (or Ctrl-D) quits."


def chat_once(engine: Engine, query: str, system: str | None = None, out: TextIO | None = None) -> str:
    """One question, the reply streamed to ``out`` (stdout) and returned."""
    out = out or sys.stdout
    if (problem := text_problem(query)) is not None:
        raise ConfigError(f"--query {problem} (bytes that are not valid UTF-8?)")
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": query}]
    try:
        reply = _stream_reply(engine, messages, out)
    except InvalidRequest as err:
        raise ConfigError(f"--query: {err}") from None
    out.write("\n")
    out.flush()
    return reply


def _stream_reply(engine: Engine, messages: list[dict], out: TextIO) -> str:
    pieces = []
    for piece in engine.stream(messages):
        out.write(piece)
        out.flush()
        pieces.append(piece)
    return "".join(pieces)


class InvalidLine(str):
    """A line that could not be read as text: its value shows the bad part as U+FFFD, ``problem`` says why."""

    problem = ""


def _read_line(inp: TextIO) -> str:
    """The next line ("" at the end of input). Read as bytes and decoded here when ``inp`` has a byte buffer, so
    that bad bytes spoil only their own line (a text stream would raise, and drop what it had buffered)."""
    buffer = getattr(inp, "buffer", None)
    if buffer is None:
        line = inp.readline()
        problem = text_problem(line)  # e.g. bytes decoded with errors="surrogateescape"
        shown = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in line) if problem else line
    else:
        raw = buffer.readline()
        encoding = getattr(inp, "encoding", None) or "utf-8"
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError as err:
            name = "UTF-8" if encoding.lower().replace("-", "").replace("_", "") == "utf8" else encoding
            problem = f"is not valid {name} text: byte 0x{raw[err.start]:02x} at position {err.start}"
            shown = raw.decode(encoding, "replace")
    if problem is None:
        return line
    bad = InvalidLine(shown)
    bad.problem = problem
    return bad


def chat_loop(engine: Engine, system: str | None = None, inp: TextIO | None = None, out: TextIO | None = None) -> int:
    inp, out = inp or sys.stdin, out or sys.stdout
    interactive = inp.isatty()
    out.write(WELCOME + "\n")
    history: list[dict] = []
    while True:
        out.write("\nUser: ")
        out.flush()
        line = _read_line(inp)
        if not line:  # end of input
            out.write("\n")
            return 0
        query = line.strip()
        if not interactive:
            out.write(query + "\n")  # show what was read when stdin is a file or a pipe
        if isinstance(line, InvalidLine):  # say so and go on: nothing is sent, the history is kept
            out.write(f"[this line {line.problem}; nothing was sent, type it again]\n")
            continue
        if not query:
            continue
        if query.lower() in EXIT:
            return 0
        if query.lower() in CLEAR:
            history = []
            out.write("History has been removed.\n")
            continue
        messages = ([{"role": "system", "content": system}] if system else []) + history
        messages.append({"role": "user", "content": query})
        out.write("Assistant: ")
        out.flush()
        try:
            reply = _stream_reply(engine, messages, out)
        except InvalidRequest as err:  # e.g. the history outgrew the context: say so, keep the session
            out.write(f"[{err}; `clear` starts over]\n")
            continue
        out.write("\n")
        history += [{"role": "user", "content": query}, {"role": "assistant", "content": reply}]
