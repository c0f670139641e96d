"""Template -> Jinja chat_template, so a trained model's tokenizer renders exactly the training prompts.

`apply_chat_template(messages, add_generation_prompt=True)` of the result equals
`Template.generation_prompt`, and a conversation ending with a reply renders as the training text.
As in LLaMA-Factory-style templates the user slot already opens the assistant turn, so the generation
prompt adds nothing after a user message.
"""

from __future__ import annotations

import json
import re

from .base import Template

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


def to_jinja(template: Template) -> str:
    t = template
    system_slot = _slot(t.system, "ns.system")
    lines = [
        "{%- set ns = namespace(system=" + _literal(t.default_system) + ", first=true) -%}",
        "{%- if messages and messages[0]['role'] == 'system' -%}",
        "{%- set ns.system = messages[0]['content'] -%}{%- set loop_messages = messages[1:] -%}",
        "{%- else -%}{%- set loop_messages = messages -%}{%- endif -%}",
        _slot(t.prefix),
    ]
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
    lines.append("{%- elif message['role'] in ('function', 'function_call') -%}" + _slot(t.function or t.assistant)
                 + _sep(t))
    lines.append("{%- elif message['role'] == 'assistant' -%}" + _slot(t.assistant) + _sep(t))
    lines.append("{%- endif -%}")
    lines.append("{%- endfor -%}")
    return "\n".join(line for line in lines if line)


def _sep(t: Template) -> str:
    if not t.assistant_sep:
        return ""
    return "{%- if not loop.last -%}" + _slot(t.assistant_sep) + "{%- endif -%}"


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
