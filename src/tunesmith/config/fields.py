"""Config fields with help text (shared by the section modules)."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def opt(default: Any, help: str, choices: tuple[str, ...] | None = None, list_sep: bool = False) -> Any:
    """A dataclass field with help text; ``list_sep`` marks comma-separated list values."""
    meta = {"help": help, "choices": choices, "list": list_sep}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)
