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
    """Required: ``name``, ``needs_template``, ``encode``. Optional (preference stages):
    ``model_head`` ("lm" default, or "score" for a one-output sequence-classification head),
    ``collator(pad_token_id)`` (default: the sft/pt Collator), ``make_loss(cfg)`` -> a callable
    ``(trainer, model, inputs, return_outputs, num_items_in_batch)`` returning the mean loss of the
    micro-batch (default: the causal-LM loss), ``uses_reference(cfg)`` (needs a reference model)."""

    name: str
    needs_template: bool

    def encode(self, attr: DatasetAttr, rows: list[dict], tokenizer, template, data: DataArgs
               ) -> tuple[list[EncodedExample], EncodeStats]: ...


STAGES: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    STAGES[stage.name] = stage
    return stage


def get_stage(name: str) -> Stage:
    from . import dpo, kto, ppo, pt, rm, sft  # noqa: F401  (registration side effect)

    if name not in STAGES:
        raise ConfigError(f"stage `{name}` is not available; available: {', '.join(sorted(STAGES))}")
    return STAGES[name]
