"""Multimodal placeholders in text (`<image>`, `<video>`, `<audio>`, or what LLaMA-Factory's IMAGE_PLACEHOLDER,
VIDEO_PLACEHOLDER and AUDIO_PLACEHOLDER set) are refused: tunesmith trains on text only, and such a row would
otherwise train silently as text without its media."""

from __future__ import annotations

import os

from ...config.errors import ConfigError
from ..registry import MULTIMODAL_NOT_AVAILABLE, DatasetAttr

_PLACEHOLDERS = (("image", "IMAGE_PLACEHOLDER", "<image>"), ("video", "VIDEO_PLACEHOLDER", "<video>"),
                 ("audio", "AUDIO_PLACEHOLDER", "<audio>"))

Marks = tuple[tuple[str, str, str], ...]  # (kind, marker, variable)


def placeholders() -> Marks:
    """The markers in use, read from the environment as LLaMA-Factory reads them."""
    return tuple((kind, os.environ.get(variable) or default, variable) for kind, variable, default in _PLACEHOLDERS)


def refuse_placeholders(attr: DatasetAttr, index: int, where: str, text: object, marks: Marks | None = None) -> None:
    """Fail naming the dataset, row and place (``where``: a turn or a column) when ``text`` holds a marker."""
    if not isinstance(text, str):
        return
    for kind, marker, variable in marks or placeholders():
        if marker in text:
            raise ConfigError(f"dataset `{attr.name}` row {index}: {where} holds the {kind} placeholder `{marker}`: "
                              f"{MULTIMODAL_NOT_AVAILABLE}. If `{marker}` is plain text in this data, set {variable} "
                              "to a marker the data does not use (LLaMA-Factory reads the same variable).")
