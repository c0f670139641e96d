"""The Stage protocol and the STAGES registry. A stage decides how rows are encoded, how they are
batched and (when it differs from the causal-LM loss) how the loss is computed."""

from __future__ import annotations

from typing import Protocol

from ..config.errors import ConfigError
from ..config.schema import DataArgs
from ..data.encode import EncodeStats
from ..data.registry import DatasetAttr
from ..types import EncodedExample


class Stage(Protocol):
    name: str
    needs_template: bool

    def encode(self, attr: DatasetAttr, rows: list[dict], tokenizer, template, data: DataArgs
               ) -> tuple[list[EncodedExample], EncodeStats]: ...


STAGES: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    STAGES[stage.name] = stage
    return stage


def get_stage(name: str) -> Stage:
    from . import pt, sft  # noqa: F401  (registration side effect)

    if name not in STAGES:
        raise ConfigError(f"stage `{name}` is not available; available: {', '.join(sorted(STAGES))}")
    return STAGES[name]
