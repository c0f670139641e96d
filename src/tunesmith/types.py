"""Canonical records passed between the data, template and stage layers."""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("user", "assistant", "observation", "function")
IGNORE_INDEX = -100


@dataclass(frozen=True)
class Message:
    role: str  # one of ROLES; the system message lives on Conversation
    content: str


@dataclass(frozen=True)
class Conversation:
    """One aligned example: alternating user/assistant turns (observation/function for tool use)."""

    messages: tuple[Message, ...]
    system: str = ""
    tools: str = ""


@dataclass(frozen=True)
class Segment:
    """A piece of rendered text and whether its tokens are trained."""

    text: str
    trained: bool


@dataclass
class EncodedExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX where not trained
    loss_weights: list[float] | None = None
    meta: dict = field(default_factory=dict)
