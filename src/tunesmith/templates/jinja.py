"""Template -> Jinja chat_template, so a trained model's tokenizer renders exactly the training prompts.

`apply_chat_template(messages, add_generation_prompt=True)` of the result equals
`Template.generation_prompt`, and a conversation ending with a reply renders as the training text.
As in LLaMA-Factory-style templates the user slot already opens the assistant turn, so the generation
prompt adds nothing after a user message (except the empty thought of a reasoning template that is told
not to think). Tools and the formatting of function calls are not exported: the Jinja renders a function
message's content as given. A JinjaTemplate (the tokenizer's own template) exports its source unchanged.
"""

from __future__ import annotations

import json
import re

from .base import Template
from .resolve import JinjaTemplate

_PLACEHOLDER = re.compile(r"(\{\{content\}\}|\{\{bos_token\}\}|\{\{eos_token\}\})")
_VARIABLES = {"{{content}}": "content", "{{bos_token}}": "bos_token", "{{eos_token}}": "eos_token"}


def _slot(slot: str, content: str = "content") -> str:
    """Jinja output statements for a slot string, with ``{{content}}`` bound to the variable ``content``."""
    parts = []
    for piece in _PLACEHOLDER.split(slot):
        if not piece:
            continue
        if piece in _VARIABLES:
            name = content if piece == "{{content}}" else _VARIABLES[piece]
            parts.append("{{ " + name + " }}")
        else:
            parts.append("{{ " + json.dumps(piece, ensure_ascii=False) + " }}")
    return "".join(parts)


def _literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def to_jinja(template: Template | JinjaTemplate) -> str:
    if isinstance(template, JinjaTemplate):  # the tokenizer's own template: hand it back unchanged
        return template.source
    t = template
    system_slot = _slot(t.system, "ns.system")
    lines = [
        "{%- set ns = namespace(system=" + _literal(t.default_system) + ", first=true) -%}",
        "{%- if messages and messages[0]['role'] == 'system' -%}",
        "{%- set ns.system = messages[0]['content'] -%}{%- set loop_messages = messages[1:] -%}",
        "{%- else -%}{%- set loop_messages = messages -%}{%- endif -%}",
        _slot(t.prefix),
    ]
    if t.reasoning:
        lines.insert(0, _strip_thought_macro(t))
    if not t.system_in_first_user:
        lines.append("{%- if ns.system -%}" + system_slot + "{%- endif -%}")
    lines.append("{%- for message in loop_messages -%}")
    lines.append("{%- set content = message['content'] -%}")
    lines.append("{%- if message['role'] == 'user' -%}")
    if t.system_in_first_user:
        lines.append("{%- if ns.first and ns.system -%}{%- set content = "
                     + _concat(t.system, "ns.system") + " + content -%}{%- endif -%}")
    lines.append("{%- set ns.first = false -%}" + _slot(t.user))
    lines.append("{%- elif message['role'] in ('tool', 'observation') -%}" + _slot(t.observation or t.user))
    function_sep = t.assistant_sep if t.function_sep is None else t.function_sep
    lines.append("{%- elif message['role'] in ('function', 'function_call') -%}" + _thought(t)
                 + _slot(t.function or t.assistant) + _sep(function_sep))
    lines.append("{%- elif message['role'] == 'assistant' -%}" + _thought(t) + _slot(t.assistant)
                 + _sep(t.assistant_sep))
    lines.append("{%- endif -%}")
    lines.append("{%- endfor -%}")
    if t.reasoning and not t.enable_thinking:  # the model is told not to think: an empty thought opens the reply
        lines.append("{%- if add_generation_prompt -%}{{ " + _literal(t.empty_thought) + " }}{%- endif -%}")
    return "\n".join(line for line in lines if line)


def _strip_thought_macro(t: Template) -> str:
    """Jinja twin of Template.remove_thought: cut every open...close thought, then leading newlines."""
    open_, close = t.thought_words
    return "".join([
        "{%- macro strip_thought(text) -%}{%- set th = namespace(rest=text, out='') -%}",
        "{%- for k in range(text.count(" + _literal(open_) + ")) -%}",
        "{%- set i = th.rest.find(" + _literal(open_) + ") -%}",
        "{%- set j = th.rest.find(" + _literal(close) + ", i + " + str(len(open_)) + ") if i >= 0 else -1 -%}",
        "{%- if j >= 0 -%}{%- set th.out = th.out + th.rest[:i] -%}",
        "{%- set th.rest = th.rest[j + " + str(len(close)) + ":] -%}{%- endif -%}{%- endfor -%}",
        "{{- (th.out + th.rest).lstrip('\\n') -}}{%- endmacro -%}",
    ])


def _thought(t: Template) -> str:
    """Reasoning templates: the thought handling of Template.turns (training text) and of
    Template.generation_prompt (history thoughts dropped) for one reply, chosen by add_generation_prompt."""
    if not t.reasoning:
        return ""
    strip_when = []
    if not t.preserve_thinking:
        strip_when.append("add_generation_prompt")
    if t.enable_thinking is False:
        strip_when.append("not add_generation_prompt")
    out = ""
    if strip_when:
        out += "{%- if " + " or ".join(strip_when) + " -%}{%- set content = strip_thought(content) -%}{%- endif -%}"
    tags = [_literal(w.strip()) for w in t.thought_words]
    out += ("{%- if not add_generation_prompt and " + tags[0] + " not in content and " + tags[1]
            + " not in content -%}{{ " + _literal(t.empty_thought) + " }}{%- endif -%}")
    return out


def _sep(sep: str) -> str:
    if not sep:
        return ""
    return "{%- if not loop.last -%}" + _slot(sep) + "{%- endif -%}"


def _concat(slot: str, content: str) -> str:
    """A Jinja string expression equal to the slot text (used where a value, not output, is needed)."""
    parts = []
    for piece in _PLACEHOLDER.split(slot):
        if not piece:
            continue
        if piece in _VARIABLES:
            parts.append(content if piece == "{{content}}" else _VARIABLES[piece])
        else:
            parts.append(_literal(piece))
    return "(" + " ~ ".join(parts) + ")"
