"""Collect plain text from data files (every string value in JSON/JSONL, lines of .txt) for tokenizer training."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


TEXT_SUFFIXES = (".json", ".jsonl", ".txt", ".md")


def texts_from_files(paths: list[str]) -> Iterator[str]:
    """Text of the named files, and of the text files (TEXT_SUFFIXES) inside named folders: a data folder's
    images and videos are left out."""
    for name in paths:
        path = Path(name)
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES) \
            if path.is_dir() else [path]
        for file in files:
            text = file.read_text(encoding="utf-8")
            if file.suffix == ".json":
                yield from _strings(json.loads(text))
            elif file.suffix == ".jsonl":
                for line in text.splitlines():
                    if line.strip():
                        yield from _strings(json.loads(line))
            elif file.suffix in (".txt", ".md"):
                yield text
