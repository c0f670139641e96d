"""Preference rows -> conversations.

Ranking datasets (`ranking: true`, for rm and dpo): a prompt (alpaca columns, or sharegpt/openai
messages ending with a user turn) plus a `chosen` and a `rejected` reply; in sharegpt form each reply is a
message object (`{"from": "gpt", "value": ...}`), in alpaca form a string.
Feedback datasets (kto): a conversation ending with its reply plus a boolean `kto_tag` column
(true = desirable).
"""

from __future__ import annotations

from ...config.errors import ConfigError
from ...types import Conversation, Message
from ..registry import DatasetAttr
from . import alpaca, sharegpt
from .columns import check_column
from .media import refuse_placeholders, with_media


def _prompt(attr: DatasetAttr, row: dict, index: int) -> Conversation:
    """The prompt part of a ranking row: a conversation that ends with a user (or tool) turn."""
    if attr.formatting == "alpaca":
        history = check_column(attr, row, index, "history", (list,), required=False) or []
        messages: list[Message] = []
        for turn_no, pair in enumerate(history):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
                raise ConfigError(f"dataset `{attr.name}` row {index}: history turn {turn_no} must be "
                                  "[prompt, response] strings")
            messages += [Message("user", pair[0]), Message("assistant", pair[1])]
        messages.append(Message("user", alpaca.prompt_text(attr, row, index)))
        system = check_column(attr, row, index, "system", (str,), required=False) or ""
        return with_media(attr, row, index, Conversation(tuple(messages), system=system))
    conv = sharegpt.to_conversation(attr, row, index, allow_open_end=True)
    if len(conv.messages) % 2 != 1:
        raise ConfigError(f"dataset `{attr.name}` row {index}: the `{attr.column('messages')}` of a ranking row "
                          "must end with a user turn; the chosen and rejected replies go in their own columns")
    return conv


def _reply(attr: DatasetAttr, row: dict, index: int, role: str) -> str:
    value = check_column(attr, row, index, role, (str, dict), required=True)
    where = f"column `{attr.column(role)}`"
    if isinstance(value, str):
        refuse_placeholders(attr, index, where, value)
        return value
    content_tag = attr.tag("content_tag") if attr.formatting != "alpaca" else "value"
    for tag in (content_tag, "value", "content"):
        if isinstance(value.get(tag), str):
            refuse_placeholders(attr, index, where, value[tag])
            return value[tag]
    raise ConfigError(f"dataset `{attr.name}` row {index}: the `{attr.column(role)}` reply must be a string or a "
                      f"message object with a string `{content_tag}`")


def to_pair(attr: DatasetAttr, row: dict, index: int) -> tuple[Conversation, Conversation]:
    """(prompt + chosen reply, prompt + rejected reply)."""
    if not attr.ranking:
        raise ConfigError(f"dataset `{attr.name}` is not a ranking dataset: preference stages (rm, dpo) need "
                          "`\"ranking\": true` and its `chosen`/`rejected` columns mapped in `columns` of its "
                          "dataset_info.json entry")
    prompt = _prompt(attr, row, index)
    chosen, rejected = (_reply(attr, row, index, role) for role in ("chosen", "rejected"))
    return tuple(Conversation(prompt.messages + (Message("assistant", reply),), prompt.system, prompt.tools,
                              prompt.images, prompt.videos) for reply in (chosen, rejected))


def to_feedback(attr: DatasetAttr, row: dict, index: int) -> tuple[Conversation, bool]:
    """(conversation ending with the reply, desirable?) of a kto row."""
    if attr.column("kto_tag") is None:
        raise ConfigError(f"dataset `{attr.name}`: stage kto needs a `kto_tag` column (true = desirable reply) "
                          "mapped in dataset_info.json `columns`")
    tag = check_column(attr, row, index, "kto_tag", (bool,), required=True)
    if attr.formatting == "alpaca":
        conv = alpaca.to_conversation(attr, row, index)
    else:
        conv = sharegpt.to_conversation(attr, row, index)
    return conv, bool(tag)
