"""Canonical records passed between layers: aligned conversations (formats -> templates -> data), encoded
examples (data -> collators; one record type per data kind), and the batches the collators build."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, TypedDict

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
    images: tuple = ()  # the row's images as the data gives them (paths, {"path"|"bytes"} objects), in order
    videos: tuple = ()

    @property
    def has_media(self) -> bool:
        return bool(self.images or self.videos)


@dataclass(frozen=True)
class Segment:
    """A piece of rendered text and whether its tokens are trained."""

    text: str
    trained: bool


@dataclass
class EncodedExample:
    """One sequence (sft example, ppo prompt): token ids and labels, IGNORE_INDEX where not trained."""

    input_ids: list[int]
    labels: list[int]
    images: list = field(default_factory=list, kw_only=True)  # the example's media, in vision-token order
    videos: list = field(default_factory=list, kw_only=True)

    def item(self) -> dict[str, Any]:
        """The record as the collators read it: one entry per field."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class PackedRow(EncodedExample):
    """Several sequences in one row (packed sft, pt): positions restart at 0 at each sequence, whose first
    label is IGNORE_INDEX, so no token is predicted from another sequence."""

    position_ids: list[int] = field(default_factory=list)
    sequences: int = 1


@dataclass
class PairExample(EncodedExample):
    """A ranking pair (rm, dpo): ``input_ids``/``labels`` are prompt + chosen, ``rejected_*`` prompt + rejected."""

    rejected_input_ids: list[int] = field(default_factory=list)
    rejected_labels: list[int] = field(default_factory=list)


@dataclass
class FeedbackExample(EncodedExample):
    """A reply tagged desirable or not (kto), and the prompt paired with another example's reply
    (``kl_*``: a mismatched completion for KTO's KL estimate)."""

    kto_tag: bool = True
    kl_input_ids: list[int] = field(default_factory=list)
    kl_labels: list[int] = field(default_factory=list)


RECORDS: dict[str, type[EncodedExample]] = {
    cls.__name__: cls for cls in (EncodedExample, PackedRow, PairExample, FeedbackExample)}


# Vision inputs a batch may carry beside its tokens (data/collate_media.py); a forward pass passes them on.
MEDIA_KEYS = ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw", "second_per_grid_ts",
              "mm_token_type_ids")


def media_inputs(batch) -> dict:
    """The vision inputs of a batch (empty for text)."""
    return {key: batch[key] for key in MEDIA_KEYS if key in batch}


class CausalBatch(TypedDict, total=False):
    """What data.collate.Collator builds (tensors; B rows of width T)."""

    input_ids: Any  # (B, T) long
    labels: Any  # (B, T) long, IGNORE_INDEX where not trained
    attention_mask: Any  # (B, T), unpacked rows without sequence boundaries
    position_ids: Any  # (B, T), packed rows (restarting per sequence) or with boundaries
    cu_seq_lens_q: Any  # (S + 1,) int32 sequence starts over the flattened batch (varlen kernels)
    cu_seq_lens_k: Any
    max_length_q: int
    max_length_k: int
    loss_index: Any  # (N,) flat positions whose next token is trained (chunked loss)
    loss_targets: Any  # (N,) those next tokens


class PairBatch(TypedDict, total=False):
    """B pairs as 2B rows: chosen_1..chosen_B then rejected_1..rejected_B."""

    input_ids: Any
    labels: Any
    attention_mask: Any
    ref_logps: Any  # (2B,) precomputed reference log-probs


class FeedbackBatch(TypedDict, total=False):
    """B tagged replies and their mismatched KL counterparts, each padded on its own."""

    input_ids: Any
    labels: Any
    attention_mask: Any
    kl_input_ids: Any
    kl_labels: Any
    kl_attention_mask: Any
    kto_tags: Any  # (B,) bool
    ref_logps: Any  # (B,) precomputed reference log-probs
    ref_kl_logps: Any  # (B,)
