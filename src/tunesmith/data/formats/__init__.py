"""Dataset formats -> canonical Conversation records. One module per LLaMA-Factory `formatting`."""

from __future__ import annotations

from ...config.errors import ConfigError
from ...types import Conversation, Message
from ..registry import DatasetAttr
from . import alpaca, sharegpt
from .columns import ranking_error
from .media import refuse_placeholders


def to_conversation(attr: DatasetAttr, row: dict, index: int) -> Conversation:
    """A supervised row; a dataset registered with `ranking: true` is refused (as LLaMA-Factory does)."""
    if attr.ranking:
        raise ranking_error(attr, None, "`ranking: true` in dataset_info.json", "remove `ranking: true` from its "
                            "entry to train on one reply per row")
    if attr.formatting == "alpaca":
        return alpaca.to_conversation(attr, row, index)
    return sharegpt.to_conversation(attr, row, index)


def to_text(attr: DatasetAttr, row: dict, index: int) -> str:
    """Pretraining text of a row: the `prompt` column (LLaMA-Factory registers pt data as prompt: text)."""
    if attr.formatting != "alpaca":
        conv = sharegpt.to_conversation(attr, row, index, allow_open_end=True)
        if conv.has_media:
            raise ConfigError(f"dataset `{attr.name}` row {index}: has images or videos, but pretraining (stage pt) "
                              "trains on text only; train media rows with stage sft")
        return "\n".join(m.content for m in conv.messages)
    text_column = attr.column("text") or ("text" if attr.column("prompt") not in row and "text" in row else None)
    if text_column is not None:
        value = row.get(text_column)
        if not isinstance(value, str):
            raise ConfigError(f"dataset `{attr.name}` row {index}: column `{text_column}` must be a string, "
                              f"got {type(value).__name__}")
        refuse_placeholders(attr, index, f"column `{text_column}`", value)
        return value
    text = alpaca.prompt_text(attr, row, index)
    refuse_placeholders(attr, index, f"column `{attr.column('prompt')}`", text)
    return text


def to_prompt(attr: DatasetAttr, row: dict, index: int) -> Conversation:
    """A prompt row (ppo) as a conversation that ends with an (ignored) assistant reply: any sft-style row;
    its reply is ignored, it may also end with its user turn, or leave the alpaca output out."""
    if attr.formatting == "alpaca":
        column = attr.column("response")
        if column is not None and row.get(column) is None:
            row = {**row, column: ""}
        return alpaca.to_conversation(attr, row, index)
    conv = sharegpt.to_conversation(attr, row, index, allow_open_end=True)
    if len(conv.messages) % 2:
        conv = Conversation(conv.messages + (Message("assistant", ""),), system=conv.system, tools=conv.tools,
                            images=conv.images, videos=conv.videos)
    return conv
