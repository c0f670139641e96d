"""Tool use as LLaMA-Factory writes it, one format per model family.

``format_tools`` turns ``Conversation.tools`` (a JSON list of tool schemas) into text that is appended to
the system message; ``format_function`` turns a function message (a JSON call ``{"name", "arguments"}``
or a list of them, optionally with a thought or free text around a ``<tool_call>`` block) into the
family's call syntax. Formats: ``default`` (ReAct-style ``Action:`` lines, every template without its own
format), ``qwen`` (Hermes ``<tool_call>`` blocks), ``llama3`` (JSON with ``parameters``), ``mistral``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

DEFAULT_TOOL_PROMPT = (
    "You have access to the following tools:\n{tool_text}"
    "Use the following format if using a tool:\n```\n"
    "Action: tool name (one of [{tool_names}])\n"
    "Action Input: the input to the tool, in a JSON format representing the kwargs "
    '(e.g. ```{{"input": "hello world", "num_beams": 5}}```)\n```\n'
)
QWEN_TOOL_PROMPT = (
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>{tool_text}"
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{{"name": <function-name>, '
    '"arguments": <args-json-object>}}\n</tool_call>'
)
LLAMA3_TOOL_PROMPT = (
    "Cutting Knowledge Date: December 2023\nToday Date: {date}\n\n"
    "You have access to the following functions. To call a function, please respond with JSON for a function call. "
    'Respond in the format {{"name": function name, "parameters": dictionary of argument name and its value}}. '
    "Do not use variables.\n\n{tool_text}"
)
FORMATS = ("default", "qwen", "llama3", "mistral")


def today() -> str:
    """The date written into Llama 3's tool prompt (tests replace it to get stable text)."""
    return datetime.now().strftime("%d %b %Y")


def _dumps(obj, **kw) -> str:
    return json.dumps(obj, ensure_ascii=False, **kw)


def _wrapped(tool: dict) -> dict:
    return tool if tool.get("type") == "function" else {"type": "function", "function": tool}


def _default_tools(tools: list[dict]) -> str:
    tool_text, names = "", []
    for tool in tools:
        tool = tool.get("function", "") if tool.get("type") == "function" else tool
        params = tool.get("parameters", {})
        args = ""
        for name, param in params.get("properties", {}).items():
            required = ", required" if name in params.get("required", []) else ""
            enum = f", should be one of [{', '.join(map(str, param['enum']))}]" if param.get("enum") else ""
            items = f", where each item should be {param['items'].get('type', '')}" if param.get("items") else ""
            args += f"  - {name} ({param.get('type', '')}{required}): {param.get('description', '')}{enum}{items}\n"
        tool_text += (f"> Tool Name: {tool['name']}\nTool Description: {tool.get('description', '')}\n"
                      f"Tool Args:\n{args}\n")
        names.append(tool["name"])
    return DEFAULT_TOOL_PROMPT.format(tool_text=tool_text, tool_names=", ".join(names))


_TOOLS = {
    "default": _default_tools,
    "qwen": lambda tools: QWEN_TOOL_PROMPT.format(tool_text="".join("\n" + _dumps(_wrapped(t)) for t in tools)),
    "llama3": lambda tools: LLAMA3_TOOL_PROMPT.format(
        date=today(), tool_text="".join(_dumps(_wrapped(t), indent=4) + "\n\n" for t in tools)),
    "mistral": lambda tools: f"[AVAILABLE_TOOLS] {_dumps([_wrapped(t) for t in tools])}[/AVAILABLE_TOOLS]",
}
_CALLS = {
    "default": lambda calls: "\n".join(f"Action: {name}\nAction Input: {_dumps(args)}" for name, args in calls),
    "qwen": lambda calls: "\n".join(
        f"<tool_call>\n{_dumps({'name': name, 'arguments': args})}\n</tool_call>" for name, args in calls),
    "llama3": lambda calls: _dumps([{"name": n, "parameters": a} for n, a in calls] if len(calls) > 1
                                   else {"name": calls[0][0], "parameters": calls[0][1]}),
    "mistral": lambda calls: _dumps([{"name": name, "arguments": args} for name, args in calls]),
}


def _check(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown tool format {fmt!r}; known: {', '.join(FORMATS)}")


def format_tools(fmt: str, tools_json: str) -> str:
    """System-prompt text describing the tools ("" for an empty list)."""
    _check(fmt)
    try:
        tools = json.loads(tools_json)
    except json.JSONDecodeError:
        raise ValueError(f"tools are not valid JSON: {tools_json[:200]!r}") from None
    if isinstance(tools, dict):
        tools = [tools]
    return _TOOLS[fmt](tools) if tools else ""


def _parse_calls(text: str) -> list[tuple[str, object]]:
    try:
        calls = json.loads(text)
        calls = calls if isinstance(calls, list) else [calls]
        return [(call["name"], call["arguments"]) for call in calls]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError("a function message must be a JSON tool call {\"name\": ..., \"arguments\": ...} "
                         f"or a list of them, got {text[:200]!r}") from None


def format_function(fmt: str, content: str, thought_words: tuple[str, str],
                    tool_call_words: tuple[str, str] = ("<tool_call>", "</tool_call>")) -> str:
    """A function message in the family's call syntax; a leading thought, or any text around a
    ``<tool_call>...</tool_call>`` block, is kept in front of the formatted call (as LLaMA-Factory does)."""
    _check(fmt)
    block = re.search(f"{re.escape(tool_call_words[0])}(.*?){re.escape(tool_call_words[1])}", content, re.DOTALL)
    if block is not None:
        before, calls = content.replace(block.group(0), ""), block.group(1)
    else:
        thought = re.search(f"{re.escape(thought_words[0])}(.*?){re.escape(thought_words[1])}", content, re.DOTALL)
        before = thought.group(0) if thought else ""
        calls = content.replace(thought.group(0), "") if thought else content
    return before + _CALLS[fmt](_parse_calls(calls))
