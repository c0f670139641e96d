"""Images and videos of a row (LLaMA-Factory's `images` / `videos` columns) and their placeholders in the text
(`<image>`, `<video>`, or what IMAGE_PLACEHOLDER / VIDEO_PLACEHOLDER set, as LLaMA-Factory reads them).

Each placeholder stands for the next item of its column, in order across the conversation; the counts must
match, as in LLaMA-Factory. A row's media ride on its Conversation as given (a path, relative to media_dir or
dataset_dir, or a {"path"|"bytes"} object); the data kind's encoder expands them with the model's processor.
Audio is not supported: a row with audio (or an `<audio>` placeholder) is refused, naming the row."""

from __future__ import annotations

import os
from dataclasses import replace

from ...config.errors import ConfigError
from ...types import Conversation
from ..registry import DatasetAttr

_PLACEHOLDERS = (("image", "IMAGE_PLACEHOLDER", "<image>"), ("video", "VIDEO_PLACEHOLDER", "<video>"),
                 ("audio", "AUDIO_PLACEHOLDER", "<audio>"))
AUDIO_NOT_SUPPORTED = ("audio inputs are not supported: tunesmith trains images and videos of Qwen-VL models "
                       "(Qwen2-VL, Qwen2.5-VL, Qwen3-VL)")

Marks = tuple[tuple[str, str, str], ...]  # (kind, marker, variable)


def placeholders() -> Marks:
    """The markers in use, read from the environment as LLaMA-Factory reads them."""
    return tuple((kind, os.environ.get(variable) or default, variable) for kind, variable, default in _PLACEHOLDERS)


def refuse_placeholders(attr: DatasetAttr, index: int, where: str, text: object, marks: Marks | None = None) -> None:
    """Fail naming the dataset, row and place (``where``: a column) when ``text`` holds a marker in a place that
    cannot carry media (pretraining text, a ranking row's reply)."""
    if not isinstance(text, str):
        return
    for kind, marker, variable in marks or placeholders():
        if marker in text:
            raise ConfigError(f"dataset `{attr.name}` row {index}: {where} holds the {kind} placeholder `{marker}`, "
                              f"but media can only be placed in the prompt messages of supervised and ranking "
                              f"rows. If `{marker}` is plain text in this data, set {variable} to a marker the "
                              "data does not use (LLaMA-Factory reads the same variable).")


def _items(attr: DatasetAttr, row: dict, index: int, role: str) -> tuple:
    column = attr.column(role)
    value = row.get(column) if column else None
    if value is None:
        return ()
    items = value if isinstance(value, (list, tuple)) else [value]
    for n, item in enumerate(items):
        if not (isinstance(item, (str, bytes, dict, list)) or hasattr(item, "convert")):  # PIL images from hubs
            raise ConfigError(f"dataset `{attr.name}` row {index}: column `{column}` item {n} must be a file path, "
                              f"a {{\"path\"|\"bytes\"}} object or an image, got {type(item).__name__}")
        if isinstance(item, str) and not item.strip():
            raise ConfigError(f"dataset `{attr.name}` row {index}: column `{column}` item {n} is an empty path")
    return tuple(items)


def with_media(attr: DatasetAttr, row: dict, index: int, conv: Conversation) -> Conversation:
    """``conv`` with the row's images and videos, after checking that each placeholder has its item."""
    media = {"image": _items(attr, row, index, "images"), "video": _items(attr, row, index, "videos"),
             "audio": _items(attr, row, index, "audios")}
    texts = [m.content for m in conv.messages]
    for kind, marker, variable in placeholders():
        count = sum(text.count(marker) for text in texts)
        given = len(media[kind])
        if kind == "audio" and (count or given):
            raise ConfigError(f"dataset `{attr.name}` row {index}: {AUDIO_NOT_SUPPORTED}")
        if count != given:
            column = attr.column(f"{kind}s")
            source = f"column `{column}`" if column else f"no `{kind}s` column mapped in dataset_info.json"
            hint = (f"; put one `{marker}` in the messages where each {kind} goes" if given else
                    f"; map the `{kind}s` column in the dataset's dataset_info.json entry, or, if `{marker}` is "
                    f"plain text in this data, set {variable} to a marker the data does not use (LLaMA-Factory "
                    "reads the same variable)")
            raise ConfigError(f"dataset `{attr.name}` row {index}: {count} `{marker}` placeholder(s) in the "
                              f"messages but {given} {kind}(s) ({source}){hint}")
    if not media["image"] and not media["video"]:
        return conv
    return replace(conv, images=media["image"], videos=media["video"])
