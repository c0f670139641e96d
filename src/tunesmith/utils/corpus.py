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


def texts_from_files(paths: list[str]) -> Iterator[str]:
    for name in paths:
        path = Path(name)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
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
