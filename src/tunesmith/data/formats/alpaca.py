"""alpaca: instruction / input / output columns (+ optional system and history)."""

from __future__ import annotations

import json

from ...config.errors import ConfigError
from ...types import Conversation, Message
from ..registry import DatasetAttr
from .columns import check_column, looks_ranking, ranking_error
from .media import with_media


def prompt_text(attr: DatasetAttr, row: dict, index: int) -> str:
    parts = [check_column(attr, row, index, "prompt", (str,), required=True),
             check_column(attr, row, index, "query", (str,), required=False)]
    return "\n".join(p for p in parts if p)


def to_conversation(attr: DatasetAttr, row: dict, index: int) -> Conversation:
    messages: list[Message] = []
    history = check_column(attr, row, index, "history", (list,), required=False) or []
    for turn_no, pair in enumerate(history):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise ConfigError(f"dataset `{attr.name}` row {index}: history turn {turn_no} must be "
                              "[prompt, response] strings")
        messages += [Message("user", pair[0]), Message("assistant", pair[1])]
    messages.append(Message("user", prompt_text(attr, row, index)))
    if row.get(attr.column("response") or "") is None and looks_ranking(attr, row):
        column = attr.column("response")
        raise ranking_error(attr, index, f"chosen/rejected columns, no `{column}`", f"give each row its reply in "
                                                                                    f"`{column}`")
    response = check_column(attr, row, index, "response", (str, int, float), required=True)
    messages.append(Message("assistant", str(response)))
    system = check_column(attr, row, index, "system", (str,), required=False) or ""
    tools = check_column(attr, row, index, "tools", (str, list, dict), required=False) or ""
    tools_text = tools if isinstance(tools, str) else json.dumps(tools, ensure_ascii=False)
    return with_media(attr, row, index, Conversation(tuple(messages), system=system, tools=tools_text))
