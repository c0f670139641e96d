"""Terminal chat: multi-turn, streamed, with `clear` (forget the history) and `exit` commands."""

from __future__ import annotations

import sys
from typing import TextIO

from ..config.errors import ConfigError
from .engine import Engine, InvalidRequest

CLEAR = ("clear", "/clear")
EXIT = ("exit", "quit", "/exit", "/quit")
WELCOME = "Chat with the model: `clear` forgets the history, `exit` (or Ctrl-D) quits."


def chat_once(engine: Engine, query: str, system: str | None = None, out: TextIO | None = None) -> str:
    """One question, the reply streamed to ``out`` (stdout) and returned."""
    out = out or sys.stdout
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


def chat_loop(engine: Engine, system: str | None = None, inp: TextIO | None = None, out: TextIO | None = None) -> int:
    inp, out = inp or sys.stdin, out or sys.stdout
    interactive = inp.isatty()
    out.write(WELCOME + "\n")
    history: list[dict] = []
    while True:
        out.write("\nUser: ")
        out.flush()
        line = inp.readline()
        if not line:  # end of input
            out.write("\n")
            return 0
        query = line.strip()
        if not interactive:
            out.write(query + "\n")  # show what was read when stdin is a file or a pipe
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
