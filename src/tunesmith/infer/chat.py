"""Terminal chat: multi-turn, streamed, with `clear` (forget the history) and `exit` commands. A line that is not
valid text (bytes that are not UTF-8) is reported and skipped; the session goes on.

A vision-language model takes images and videos: `/image PATH` (`/video PATH`) attaches an image (a video) file to
the next message (repeat it for several), `--image PATH` (`--video PATH`) to the first. The message's `<image>`
(`<video>`) placeholders mark where each one goes; a message without any gets one per item in front of its text
(videos first). Images and videos stay with their message in the history."""

from __future__ import annotations

import sys
from typing import TextIO

from ..config.errors import ConfigError
from ..data.media.files import MediaError, image_size
from .engine import Engine, InvalidRequest, text_problem
from .vision import video_problem

CLEAR = ("clear", "/clear")
EXIT = ("exit", "quit", "/exit", "/quit")
IMAGE = "/image"
VIDEO = "/video"
WELCOME = "Chat with the model: `clear` forgets the history, `exit` (or Ctrl-D) quits."
WELCOME_IMAGES = " `/image PATH` attaches an image to your next message, `/video PATH` a video."


def _refuse_media(engine: Engine, kind: str, path: str) -> None:
    if getattr(engine, "vision", None) is None:
        refusal = engine.image_refusal() if hasattr(engine, "image_refusal") else "this model reads text only"
        raise ConfigError(f"{kind} {path}: {refusal}")


def check_image(engine: Engine, path: str) -> str:
    """``path`` when the model takes images and the file is an image; else ConfigError saying why."""
    _refuse_media(engine, "image", path)
    try:
        image_size(path)
    except MediaError as err:
        raise ConfigError(str(err)) from None
    return path


def check_video(engine: Engine, path: str) -> str:
    """``path`` when the model takes videos and the file is a video PyAV can open; else ConfigError saying why."""
    _refuse_media(engine, "video", path)
    if (problem := video_problem(engine.vision, path)) is not None:
        raise ConfigError(problem)
    return path


def user_message(text: str, images: list[str], videos: list[str] = ()) -> dict:
    return {"role": "user", "content": text, **({"images": list(images)} if images else {}),
            **({"videos": list(videos)} if videos else {})}


def chat_once(engine: Engine, query: str, system: str | None = None, out: TextIO | None = None,
              images: list[str] | None = None, videos: list[str] | None = None) -> str:
    """One question (with ``images`` and ``videos``, file paths), the reply streamed to ``out`` (stdout) and
    returned."""
    out = out or sys.stdout
    if (problem := text_problem(query)) is not None:
        raise ConfigError(f"--query {problem} (bytes that are not valid UTF-8?)")
    images = [check_image(engine, path) for path in images or ()]
    videos = [check_video(engine, path) for path in videos or ()]
    messages = ([{"role": "system", "content": system}] if system else []) + [user_message(query, images, videos)]
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
              images: list[str] | None = None, videos: list[str] | None = None) -> int:
    """The chat session; ``images`` and ``videos`` (file paths) go with the first message."""
    inp, out = inp or sys.stdin, out or sys.stdout
    interactive = inp.isatty()
    pending = [check_image(engine, path) for path in images or ()]  # images for the next message
    pending_videos = [check_video(engine, path) for path in videos or ()]
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
            history, pending, pending_videos = [], [], []
            out.write("History has been removed.\n")
            continue
        command = query.split(maxsplit=1)[0].lower()
        if command in (IMAGE, VIDEO):
            kind, check, waiting = (("image", check_image, pending) if command == IMAGE
                                    else ("video", check_video, pending_videos))
            path = query[len(command):].strip().strip("\"'")
            if not path:
                out.write(f"[usage: {command} PATH attaches {'an' if kind == 'image' else 'a'} {kind} file to your "
                          "next message]\n")
                continue
            try:
                waiting.append(check(engine, path))
            except ConfigError as err:
                out.write(f"[{err}]\n")
                continue
            out.write(f"[{kind} {path} attached to your next message ({len(waiting)} waiting)]\n")
            continue
        messages = ([{"role": "system", "content": system}] if system else []) + history
        messages.append(user_message(query, pending, pending_videos))
        out.write("Assistant: ")
        out.flush()
        try:
            reply = _stream_reply(engine, messages, out)
        except InvalidRequest as err:  # e.g. the history outgrew the context: say so, keep the session
            out.write(f"[{err}; `clear` starts over]\n")
            continue
        out.write("\n")
        history += [messages[-1], {"role": "assistant", "content": reply}]
        pending, pending_videos = [], []
