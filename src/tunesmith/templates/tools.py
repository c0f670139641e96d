"""Tool use as LLaMA-Factory writes it, one format per model family (its ``tool_utils.py``).

``format_tools`` turns ``Conversation.tools`` (a JSON list of tool schemas) into text that is appended to
the system message; ``format_function`` turns a function message (a JSON call ``{"name", "arguments"}``
or a list of them, optionally with a thought or free text around a ``<tool_call>`` block) into the
family's call syntax. Formats: ``default`` (ReAct-style ``Action:`` lines, every template without its own
format), ``qwen`` (Hermes ``<tool_call>`` blocks), ``llama3`` (JSON with ``parameters``), ``mistral``,
``glm4``, ``glm4_moe``, ``gemma4``, ``lfm2`` (Python-style calls), ``minimax1``, ``minimax2``,
``qwen3_5`` and ``seed_oss`` (XML-style parameters) and ``ling``. Texts are LLaMA-Factory's to the
character, its quirks included (glm4_moe and minimax2 calls have no closing block tag, seed_oss writes
``<function=name`` without ``>``), since models fine-tuned with it learned them.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

from .tool_prompts import (DEFAULT_TOOL_PROMPT, GLM4_MOE_TOOL_PROMPT, GLM4_TOOL_PROMPT, LFM2_TOOL_PROMPT,
                           LING_TOOL_PROMPT, LLAMA3_TOOL_PROMPT, MINIMAX1_TOOL_PROMPT, MINIMAX2_TOOL_PROMPT,
                           QWEN3_5_TOOL_PROMPT, QWEN_TOOL_PROMPT, SEED_TOOL_PROMPT)

# Every format, as LLaMA-Factory's tool_utils.TOOLS names them: what a template uses and a config's `tool_format`
# may name (config/schema.py lists them again, without importing templates; a test keeps the two equal).
FORMATS = ("default", "qwen", "llama3", "mistral", "gemma4", "glm4", "glm4_moe", "lfm2", "ling", "minimax1",
           "minimax2", "qwen3_5", "seed_oss")
ALL_FORMATS = FORMATS


def today() -> str:
    """The date written into Llama 3's tool prompt (tests replace it to get stable text)."""
    return datetime.now().strftime("%d %b %Y")


def _dumps(obj, **kw) -> str:
    return json.dumps(obj, ensure_ascii=False, **kw)


def _wrapped(tool: dict) -> dict:
    return tool if tool.get("type") == "function" else {"type": "function", "function": tool}


def _bare(tool: dict, missing=None) -> dict:
    """The function schema of a tool given as ``{"type": "function", "function": ...}`` or bare; ``missing`` is
    what a wrapped tool without a "function" field gives (LLaMA-Factory differs here between formats)."""
    if tool.get("type") != "function":
        return tool
    return tool.get("function", tool if missing is None else missing)


def _text(value) -> str:
    """A parameter value in XML-style call formats: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else _dumps(value)


# -- tool lists (system prompt) -------------------------------------------------------------------------
def _default_tools(tools: list[dict]) -> str:
    tool_text, names = "", []
    for tool in tools:
        tool = _bare(tool, missing="")
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


def _glm4_tools(tools: list[dict]) -> str:
    text = "".join(f"\n\n## {t['name']}\n\n{_dumps(t, indent=4)}\n在调用上述函数时，请使用 Json 格式表示调用的参数。"
                   for t in (_bare(tool, missing="") for tool in tools))
    return GLM4_TOOL_PROMPT.format(tool_text=text)


def _gemma4_quoted(value) -> str:
    return f'<|"|>{value}<|"|>'


def _gemma4_tools(tools: list[dict]) -> str:
    declarations = []
    for tool in tools:
        fn = _bare(tool)
        text = f"declaration:{fn['name']}{{description:{_gemma4_quoted(fn.get('description', ''))}"
        params = fn.get("parameters")
        if params:
            parts = []
            if params.get("properties"):
                props = []
                for name, schema in params["properties"].items():
                    fields = []
                    if schema.get("description"):
                        fields.append(f"description:{_gemma4_quoted(schema['description'])}")
                    if schema.get("type"):
                        fields.append(f"type:{_gemma4_quoted(str(schema['type']).upper())}")
                    props.append(f"{name}:{{{','.join(fields)}}}")
                parts.append(f"properties:{{{','.join(props)}}}")
            if params.get("required"):
                parts.append(f"required:[{','.join(_gemma4_quoted(r) for r in params['required'])}]")
            if params.get("type"):
                parts.append(f"type:{_gemma4_quoted(str(params['type']).upper())}")
            text += f",parameters:{{{','.join(parts)}}}"
        response = fn.get("response")
        if response:
            parts = []
            if response.get("description"):
                parts.append(f"description:{_gemma4_quoted(response['description'])}")
            if str(response.get("type", "")).upper() == "OBJECT":
                parts.append(f"type:{_gemma4_quoted('OBJECT')}")
            text += f",response:{{{','.join(parts)}}}"
        declarations.append(text + "}")
    return "\n".join(declarations)


_TOOLS = {
    "default": _default_tools,
    "qwen": lambda tools: QWEN_TOOL_PROMPT.format(tool_text="".join("\n" + _dumps(_wrapped(t)) for t in tools)),
    "llama3": lambda tools: LLAMA3_TOOL_PROMPT.format(
        date=today(), tool_text="".join(_dumps(_wrapped(t), indent=4) + "\n\n" for t in tools)),
    "mistral": lambda tools: f"[AVAILABLE_TOOLS] {_dumps([_wrapped(t) for t in tools])}[/AVAILABLE_TOOLS]",
    "gemma4": _gemma4_tools,
    "glm4": _glm4_tools,
    "glm4_moe": lambda tools: GLM4_MOE_TOOL_PROMPT.format(
        tool_text="".join("\n" + _dumps(_wrapped(t)) for t in tools)),
    "lfm2": lambda tools: LFM2_TOOL_PROMPT.format(tool_text=_dumps([_bare(t) for t in tools])),
    "ling": lambda tools: LING_TOOL_PROMPT.format(tool_text="".join("\n" + _dumps(_wrapped(t)) for t in tools)),
    "minimax1": lambda tools: MINIMAX1_TOOL_PROMPT.format(
        tool_text="".join(_dumps(_bare(t, missing="")) + "\n" for t in tools)),
    "minimax2": lambda tools: MINIMAX2_TOOL_PROMPT.format(
        tool_text="".join(f"<tool>{_dumps(_bare(t, missing=''))}</tool>\n" for t in tools)),
    "qwen3_5": lambda tools: QWEN3_5_TOOL_PROMPT.format(tool_text="".join("\n" + _dumps(_bare(t)) for t in tools)),
    "seed_oss": lambda tools: SEED_TOOL_PROMPT.format(tool_text="\n" + _dumps(tools)),  # the list as given
}


# -- calls (function messages) --------------------------------------------------------------------------
def _glm4_calls(calls) -> str:
    if len(calls) > 1:
        raise ValueError("GLM-4 does not support parallel functions.")
    return f"{calls[0][0]}\n{_dumps(calls[0][1])}"


def _gemma4_value(value, quote_keys: bool) -> str:
    if isinstance(value, str):
        return _gemma4_quoted(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_gemma4_quoted(k) if quote_keys else k}:{_gemma4_value(value[k], quote_keys)}"
                              for k in sorted(value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_gemma4_value(item, quote_keys) for item in value) + "]"
    return "null" if value is None else str(value)


def _gemma4_call(name: str, args) -> str:
    if isinstance(args, dict):
        inner = ",".join(f"{k}:{_gemma4_value(args[k], quote_keys=False)}" for k in sorted(args))
    else:
        inner = args if isinstance(args, str) else _gemma4_value(args, quote_keys=False)
    return f"<|tool_call>call:{name}{{{inner}}}<tool_call|>"


def _lfm2_calls(calls) -> str:
    def call(name, args):
        kwargs = [f'{k}="{v}"' if isinstance(v, str) else f"{k}={_dumps(v)}" for k, v in args.items()]
        return f"{name}({', '.join(kwargs)})"
    return f"<|tool_call_start|>[{', '.join(call(n, a) for n, a in calls)}]<|tool_call_end|>"


def _qwen_calls(calls) -> str:
    return "\n".join(f"<tool_call>\n{_dumps({'name': name, 'arguments': args})}\n</tool_call>" for name, args in calls)


_CALLS = {
    "default": lambda calls: "\n".join(f"Action: {name}\nAction Input: {_dumps(args)}" for name, args in calls),
    "qwen": _qwen_calls,
    "llama3": lambda calls: _dumps([{"name": n, "parameters": a} for n, a in calls] if len(calls) > 1
                                   else {"name": calls[0][0], "parameters": calls[0][1]}),
    "mistral": lambda calls: _dumps([{"name": name, "arguments": args} for name, args in calls]),
    "gemma4": lambda calls: "".join(_gemma4_call(name, args) for name, args in calls),
    "glm4": _glm4_calls,
    "glm4_moe": lambda calls: "\n".join(  # no closing </tool_call>, as LLaMA-Factory writes it
        f"\n<tool_call>{name}" + "".join(f"\n<arg_key>{k}</arg_key>\n<arg_value>{_text(v)}</arg_value>"
                                         for k, v in args.items()) for name, args in calls),
    "lfm2": _lfm2_calls,
    "ling": _qwen_calls,
    "minimax1": lambda calls: "<tool_calls>\n" + "\n".join(
        _dumps({"name": name, "arguments": args}) for name, args in calls) + "\n</tool_calls>",
    "minimax2": lambda calls: "\n".join(  # no <minimax:tool_call> wrapper, as LLaMA-Factory writes it
        f'<invoke name="{name}">' + "".join(f'\n<parameter name="{k}">{_text(v)}</parameter>' for k, v in args.items())
        + "\n</invoke>" for name, args in calls),
    "qwen3_5": lambda calls: "\n".join(
        f"<tool_call>\n<function={name}>" + "".join(f"\n<parameter={k}>\n{_text(v)}\n</parameter>"
                                                   for k, v in args.items()) + "\n</function>\n</tool_call>"
        for name, args in calls),
    "seed_oss": lambda calls: "\n".join(  # "<function=name" without ">", as LLaMA-Factory writes it
        f"\n<seed:tool_call>\n<function={name}" + "".join(f"\n<parameter={k}>{_text(v)}</parameter>"
                                                        for k, v in args.items()) + "\n</function>\n</seed:tool_call>"
        for name, args in calls),
}


def _check(fmt: str) -> None:
    if fmt not in ALL_FORMATS:
        raise ValueError(f"unknown tool format {fmt!r}; known: {', '.join(ALL_FORMATS)}")


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
