"""sharegpt / openai: a list of role-tagged messages (MiniMind's role/content `conversations` too)."""

from __future__ import annotations

import json

from ...config.errors import ConfigError
from ...types import Conversation, Message
from ..registry import DatasetAttr
from .columns import check_column, looks_ranking, ranking_error
from .media import with_media

_PROMPT_ROLES = ("user", "observation")
_REPLY_ROLES = ("assistant", "function")


def _role_map(attr: DatasetAttr) -> dict[str, str]:
    return {attr.tag("user_tag"): "user", attr.tag("assistant_tag"): "assistant",
            attr.tag("observation_tag"): "observation", attr.tag("function_tag"): "function",
            attr.tag("system_tag"): "system"}


# Messages written as {"role", "content"} under sharegpt's default from/value tags (MiniMind, OpenAI dumps).
_OPENAI_ROLES = {"user": "user", "assistant": "assistant", "tool": "observation", "function": "function",
                 "function_call": "function", "system": "system", "human": "user", "gpt": "assistant"}


def to_conversation(attr: DatasetAttr, row: dict, index: int, allow_open_end: bool = False) -> Conversation:
    raw = check_column(attr, row, index, "messages", (list,), required=True)
    role_tag, content_tag, roles = attr.tag("role_tag"), attr.tag("content_tag"), _role_map(attr)
    where = f"dataset `{attr.name}` row {index}"
    system = check_column(attr, row, index, "system", (str,), required=False) or ""
    messages: list[Message] = []
    for turn, msg in enumerate(raw):
        if not isinstance(msg, dict):
            raise ConfigError(f"{where}: turn {turn} must be an object with `{role_tag}` and `{content_tag}`")
        tag, ctag, table = role_tag, content_tag, roles
        if role_tag not in msg and "role" in msg and "content" in msg:
            tag, ctag, table = "role", "content", _OPENAI_ROLES
        if tag not in msg or ctag not in msg:
            raise ConfigError(f"{where}: turn {turn} lacks `{role_tag}` or `{content_tag}`; set `tags` in "
                              "dataset_info.json to the message keys your data uses")
        role = table.get(msg[tag])
        if role is None:
            raise ConfigError(f"{where}: turn {turn} has unknown role {msg[tag]!r}; expected one of "
                              f"{', '.join(repr(k) for k in table)}")
        content = msg[ctag]
        if not isinstance(content, str):
            raise ConfigError(f"{where}: turn {turn} content must be a string, got {type(content).__name__}")
        if role == "system":
            if turn != 0:
                raise ConfigError(f"{where}: turn {turn} is a system message; only the first turn may be one")
            system = content
            continue
        expected = _PROMPT_ROLES if len(messages) % 2 == 0 else _REPLY_ROLES
        if role not in expected:
            raise ConfigError(f"{where}: turn {turn} is `{msg[tag]}` ({role}) but a "
                              f"{'user/observation' if expected is _PROMPT_ROLES else 'assistant/function'} turn "
                              "was expected: turns must alternate prompt, reply, prompt, reply, ...")
        messages.append(Message(role, content))
    if not messages:
        raise ConfigError(f"{where}: the conversation has no messages")
    if len(messages) % 2 != 0 and not allow_open_end and looks_ranking(attr, row):
        raise ranking_error(attr, index, f"chosen/rejected columns; `{attr.column('messages')}` ends with a "
                                         f"{messages[-1].role} turn", "end each conversation with its reply")
    if len(messages) % 2 != 0 and not allow_open_end:
        raise ConfigError(f"{where}: the conversation ends with a {messages[-1].role} turn; "
                          "it must end with an assistant reply")
    tools = check_column(attr, row, index, "tools", (str, list, dict), required=False) or ""
    tools_text = tools if isinstance(tools, str) else json.dumps(tools, ensure_ascii=False)
    return with_media(attr, row, index, Conversation(tuple(messages), system=system, tools=tools_text))
