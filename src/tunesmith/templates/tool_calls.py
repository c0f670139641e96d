"""Reading tool calls back out of a generated reply: the inverse of ``tools.format_function`` for every format.

``parse_tool_calls(fmt, text)`` returns the calls a reply makes (name + arguments as a JSON object text) and the
free text in front of them, or None when the reply is not a call in the format the model was trained on: the
server then returns it as plain text, never a half-parsed call. Besides tunesmith's own spelling it accepts the
variants LLaMA-Factory's extractors read (a closing ``</tool_call>`` after GLM-4-MoE calls, MiniMax-M2 calls
inside ``<minimax:tool_call>``, a leading ``[TOOL_CALLS]`` from Mistral models).

XML-style formats write string parameters bare and anything else as JSON, so a parameter value is read back as
JSON when it parses and as text otherwise (the string "12" comes back as the number 12, as in LLaMA-Factory).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass

from .tools import ALL_FORMATS


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # a JSON object, as OpenAI's API carries it


@dataclass(frozen=True)
class ParsedReply:
    content: str  # text before the calls (a thought, a remark), stripped; "" when none
    calls: tuple[ToolCall, ...]


class _NotACall(ValueError):
    pass


def _json(text: str):
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise _NotACall(text) from None


def _call(name, arguments) -> ToolCall:
    if not isinstance(name, str) or not name.strip():
        raise _NotACall(name)
    if isinstance(arguments, str):  # some models write the arguments as a JSON string
        arguments = _json(arguments)
    if not isinstance(arguments, dict):
        raise _NotACall(arguments)
    return ToolCall(name.strip(), json.dumps(arguments, ensure_ascii=False))


def _value(raw: str):
    """An XML-style parameter value: JSON when it parses, else the text."""
    text = raw.strip()
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return text


def _json_calls(text: str, arguments_key: str) -> tuple[str, list[ToolCall]]:
    data = _json(text.strip())
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(item, dict) and "name" in item and arguments_key in item for item in items):
        raise _NotACall(text)
    return "", [_call(item["name"], item[arguments_key]) for item in items]


def _blocks(text: str, pattern: str) -> tuple[str, list[re.Match]]:
    """The text before the first block and every block; after the blocks only whitespace may follow."""
    matches = list(re.finditer(pattern, text, re.DOTALL))
    if not matches:
        raise _NotACall(text)
    rest = text[matches[0].start():]
    leftover = re.sub(pattern, "", rest, flags=re.DOTALL)
    if leftover.strip():
        raise _NotACall(text)
    return text[:matches[0].start()], matches


def _default(text: str):
    pattern = r"Action:\s*([A-Za-z0-9_.\-]+)\s*Action Input:\s*(.+?)(?=\s*Action:|\s*$)"
    before, matches = _blocks(text, pattern)
    return before, [_call(m.group(1), _json(m.group(2).strip().strip("`"))) for m in matches]


def _qwen(text: str):
    before, matches = _blocks(text, r"<tool_call>(.*?)</tool_call>")
    calls = []
    for match in matches:
        data = _json(match.group(1).strip())
        if not isinstance(data, dict) or "name" not in data or "arguments" not in data:
            raise _NotACall(text)
        calls.append(_call(data["name"], data["arguments"]))
    return before, calls


def _mistral(text: str):
    return _json_calls(text.strip().removeprefix("[TOOL_CALLS]"), "arguments")


def _glm4(text: str):
    name, sep, arguments = text.strip().partition("\n")
    if not sep or not re.fullmatch(r"[A-Za-z0-9_.\-]+", name.strip()):
        raise _NotACall(text)
    return "", [_call(name, _json(arguments.strip()))]


def _glm4_moe(text: str):
    pattern = r"<tool_call>([^\n<]+)((?:\s*<arg_key>.*?</arg_key>\s*<arg_value>.*?</arg_value>)*)\s*(?:</tool_call>)?"
    before, matches = _blocks(text, pattern)
    calls = []
    for match in matches:
        pairs = re.findall(r"<arg_key>(.*?)</arg_key>\s*<arg_value>(.*?)</arg_value>", match.group(2), re.DOTALL)
        calls.append(_call(match.group(1), {key.strip(): _value(value) for key, value in pairs}))
    return before, calls


def _gemma4_arguments(inner: str):
    text = inner.strip()
    if not text:
        return {}
    quoted = re.sub(r'<\|"\|>(.*?)<\|"\|>', lambda m: json.dumps(m.group(1), ensure_ascii=False), "{" + text + "}",
                    flags=re.DOTALL)
    return _json(re.sub(r'(^|[{\s,\[])([A-Za-z_][A-Za-z0-9_]*)(\s*:)', r'\1"\2"\3', quoted))


def _gemma4(text: str):
    before, matches = _blocks(text, r"<\|tool_call>call:([^{\s]+)\{(.*?)\}<tool_call\|>")
    return before, [_call(m.group(1), _gemma4_arguments(m.group(2))) for m in matches]


_PY_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


def _literal(node):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in _PY_NAMES:
        return _PY_NAMES[node.id]
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_literal(node.operand)
    raise _NotACall(ast.dump(node))


def _lfm2(text: str):
    before, matches = _blocks(text, r"<\|tool_call_start\|>(.*?)<\|tool_call_end\|>")
    calls = []
    for match in matches:
        try:
            tree = ast.parse(match.group(1).strip(), mode="eval").body
        except (SyntaxError, ValueError, RecursionError):
            raise _NotACall(text) from None
        for node in tree.elts if isinstance(tree, ast.List) else [tree]:
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.args:
                raise _NotACall(text)
            calls.append(_call(node.func.id, {kw.arg: _literal(kw.value) for kw in node.keywords}))
    return before, calls


def _minimax1(text: str):
    before, matches = _blocks(text, r"<tool_calls>(.*?)</tool_calls>")
    calls = []
    for match in matches:
        for line in match.group(1).strip().splitlines():
            if line.strip():
                data = _json(line.strip())
                if not isinstance(data, dict) or "name" not in data or "arguments" not in data:
                    raise _NotACall(text)
                calls.append(_call(data["name"], data["arguments"]))
    if not calls:
        raise _NotACall(text)
    return before, calls


def _minimax2(text: str):
    unwrapped = re.sub(r"</?minimax:tool_call>", "", text)
    before, matches = _blocks(unwrapped, r'<invoke name="([^"]+)">(.*?)</invoke>')
    calls = []
    for match in matches:
        pairs = re.findall(r'<parameter name="([^"]+)">(.*?)</parameter>', match.group(2), re.DOTALL)
        calls.append(_call(match.group(1), {key: _value(value) for key, value in pairs}))
    return before, calls


def _xml_functions(text: str, open_tag: str, close_tag: str):
    pattern = (re.escape(open_tag) + r"\s*<function=\s*([^\s<>]+)>?(.*?)</function>\s*" + re.escape(close_tag))
    before, matches = _blocks(text, pattern)
    calls = []
    for match in matches:
        pairs = re.findall(r"<parameter=([^>]+)>(.*?)</parameter>", match.group(2), re.DOTALL)
        calls.append(_call(match.group(1), {key.strip(): _value(value) for key, value in pairs}))
    return before, calls


_PARSERS = {
    "default": _default,
    "qwen": _qwen,
    "ling": _qwen,
    "llama3": lambda text: _json_calls(text, "parameters"),
    "mistral": _mistral,
    "glm4": _glm4,
    "glm4_moe": _glm4_moe,
    "gemma4": _gemma4,
    "lfm2": _lfm2,
    "minimax1": _minimax1,
    "minimax2": _minimax2,
    "qwen3_5": lambda text: _xml_functions(text, "<tool_call>", "</tool_call>"),
    "seed_oss": lambda text: _xml_functions(text, "<seed:tool_call>", "</seed:tool_call>"),
}
assert set(_PARSERS) == set(ALL_FORMATS)


def parse_tool_calls(fmt: str, text: str) -> ParsedReply | None:
    """The calls in a generated reply written in ``fmt`` (tools.FORMATS), or None if it is not a call."""
    if fmt not in _PARSERS:
        raise ValueError(f"unknown tool format {fmt!r}; known: {', '.join(ALL_FORMATS)}")
    try:
        before, calls = _PARSERS[fmt](text)
    except _NotACall:
        return None
    return ParsedReply(before.strip(), tuple(calls)) if calls else None
