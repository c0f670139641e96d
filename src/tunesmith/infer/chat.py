"""Terminal chat: multi-turn, streamed, with `clear` (forget the history) and `exit` commands. A line that is not
valid text (bytes that are not UTF-8) is reported and skipped; the session goes on.

A vision-language model takes images: `/image PATH` attaches an image file to the next message (repeat it for
several), `--image PATH` to the first. The message's `<image>` placeholders mark where each image goes; a message
without any gets one per image in front of its text. Images stay with their message in the history."""

from __future__ import annotations

import sys
from typing import TextIO

from ..config.errors import ConfigError
from ..data.media.files import MediaError, image_size
from .engine import Engine, InvalidRequest, text_problem

CLEAR = ("clear", "/clear")
EXIT = ("exit", "quit", "/exit", "/quit")
IMAGE = "/image"
WELCOME = "Chat with the model: `clear` forgets the history, `exit` (or Ctrl-D) quits."
WELCOME_IMAGES = " `/image PATH` attaches an image to your next message."


def check_image(engine: Engine, path: str) -> str:
    """``path`` when the model takes images and the file is an image; else ConfigError saying why."""
    if getattr(engine, "vision", None) is None:
        refusal = engine.image_refusal() if hasattr(engine, "image_refusal") else "this model reads text only"
        raise ConfigError(f"image {path}: {refusal}")
    try:
        image_size(path)
    except MediaError as err:
        raise ConfigError(str(err)) from None
    return path


def user_message(text: str, images: list[str]) -> dict:
    return {"role": "user", "content": text, **({"images": list(images)} if images else {})}


def chat_once(engine: Engine, query: str, system: str | None = None, out: TextIO | None = None,
              images: list[str] | None = None) -> str:
    """One question (with ``images``, file paths), the reply streamed to ``out`` (stdout) and returned."""
    out = out or sys.stdout
    if (problem := text_problem(query)) is not None:
        raise ConfigError(f"--query {problem} (bytes that are not valid UTF-8?)")
    images = [check_image(engine, path) for path in images or ()]
    messages = ([{"role": "system", "content": system}] if system else []) + [user_message(query, images)]
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


def chat_loop(engine: Engine, system: str | None = None, inp: TextIO | None = None, out: TextIO | None = None,
              images: list[str] | None = None) -> int:
    """The chat session; ``images`` (file paths) go with the first message."""
    inp, out = inp or sys.stdin, out or sys.stdout
    interactive = inp.isatty()
    pending = [check_image(engine, path) for path in images or ()]  # images for the next message
    takes_images = getattr(engine, "vision", None) is not None
    out.write(WELCOME + (WELCOME_IMAGES if takes_images else "") + "\n")
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
            history, pending = [], []
            out.write("History has been removed.\n")
            continue
        if query.split(maxsplit=1)[0].lower() == IMAGE:
            path = query[len(IMAGE):].strip().strip("\"'")
            if not path:
                out.write(f"[usage: {IMAGE} PATH attaches an image file to your next message]\n")
                continue
            try:
                pending.append(check_image(engine, path))
            except ConfigError as err:
                out.write(f"[{err}]\n")
                continue
            out.write(f"[image {path} attached to your next message ({len(pending)} waiting)]\n")
            continue
        messages = ([{"role": "system", "content": system}] if system else []) + history
        messages.append(user_message(query, pending))
        out.write("Assistant: ")
        out.flush()
        try:
            reply = _stream_reply(engine, messages, out)
        except InvalidRequest as err:  # e.g. the history outgrew the context: say so, keep the session
            out.write(f"[{err}; `clear` starts over]\n")
            continue
        out.write("\n")
        history += [messages[-1], {"role": "assistant", "content": reply}]
        pending = []
