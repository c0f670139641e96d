"""Tool formats write what LLaMA-Factory's tool_utils.py writes (expected texts from its tests/data/test_formatter.py
where it has them; the others follow its formatters character by character, quirks included)."""

from __future__ import annotations

import json

import pytest

from tunesmith.templates import tools
from tunesmith.templates.builtin import TEMPLATES
from tunesmith.templates.tools import ALL_FORMATS, FORMATS, format_function, format_tools

FUNCTION = {"name": "tool_name", "arguments": {"foo": "bar", "size": 10}}
TOOLS = [{"name": "test_tool", "description": "tool_desc", "parameters": {
    "type": "object", "properties": {"foo": {"type": "string", "description": "foo_desc"},
                                     "bar": {"type": "number", "description": "bar_desc"}}, "required": ["foo"]}}]
THOUGHT = ("<think>\n", "\n</think>\n\n")
ONE = {
    "default": 'Action: tool_name\nAction Input: {"foo": "bar", "size": 10}',
    "qwen": '<tool_call>\n{"name": "tool_name", "arguments": {"foo": "bar", "size": 10}}\n</tool_call>',
    "llama3": '{"name": "tool_name", "parameters": {"foo": "bar", "size": 10}}',
    "mistral": '[{"name": "tool_name", "arguments": {"foo": "bar", "size": 10}}]',
    "glm4": 'tool_name\n{"foo": "bar", "size": 10}',
    "lfm2": '<|tool_call_start|>[tool_name(foo="bar", size=10)]<|tool_call_end|>',
    "gemma4": '<|tool_call>call:tool_name{foo:<|"|>bar<|"|>,size:10}<tool_call|>',
    "glm4_moe": "\n<tool_call>tool_name\n<arg_key>foo</arg_key>\n<arg_value>bar</arg_value>"
                "\n<arg_key>size</arg_key>\n<arg_value>10</arg_value>",
    "ling": '<tool_call>\n{"name": "tool_name", "arguments": {"foo": "bar", "size": 10}}\n</tool_call>',
    "minimax1": '<tool_calls>\n{"name": "tool_name", "arguments": {"foo": "bar", "size": 10}}\n</tool_calls>',
    "minimax2": '<invoke name="tool_name">\n<parameter name="foo">bar</parameter>'
                '\n<parameter name="size">10</parameter>\n</invoke>',
    "qwen3_5": "<tool_call>\n<function=tool_name>\n<parameter=foo>\nbar\n</parameter>\n<parameter=size>\n10\n"
               "</parameter>\n</function>\n</tool_call>",
    "seed_oss": "\n<seed:tool_call>\n<function=tool_name\n<parameter=foo>bar</parameter>"
                "\n<parameter=size>10</parameter>\n</function>\n</seed:tool_call>",
}
TWO = {  # parallel calls
    "default": ONE["default"] + "\n" + ONE["default"],
    "qwen": ONE["qwen"] + "\n" + ONE["qwen"],
    "llama3": f"[{ONE['llama3']}, {ONE['llama3']}]",
    "mistral": f"[{ONE['mistral'][1:-1]}, {ONE['mistral'][1:-1]}]",
    "lfm2": '<|tool_call_start|>[tool_name(foo="bar", size=10), tool_name(foo="bar", size=10)]<|tool_call_end|>',
    "gemma4": ONE["gemma4"] * 2,
}


def test_every_format_has_a_call_expectation_and_config_formats_are_a_subset():
    assert set(ONE) == set(ALL_FORMATS) and set(FORMATS) <= set(ALL_FORMATS)
    assert {t.tool_format for t in TEMPLATES.values()} <= set(ALL_FORMATS)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_one_call(fmt):
    assert format_function(fmt, json.dumps(FUNCTION), THOUGHT) == ONE[fmt]


@pytest.mark.parametrize("fmt", sorted(TWO))
def test_parallel_calls(fmt):
    assert format_function(fmt, json.dumps([FUNCTION] * 2), THOUGHT) == TWO[fmt]


def test_glm4_refuses_parallel_calls():
    with pytest.raises(ValueError, match="parallel"):
        format_function("glm4", json.dumps([FUNCTION] * 2), THOUGHT)


def test_thought_and_call_block_text_stay_in_front():
    call, thought = json.dumps(FUNCTION), THOUGHT[0] + "t" + THOUGHT[1]
    assert format_function("qwen", thought + call, THOUGHT) == thought + ONE["qwen"]
    words = ("<|tool_call_start|>", "<|tool_call_end|>")  # lfm2's call block
    assert format_function("lfm2", f"Sure. {words[0]}{call}{words[1]}", THOUGHT, words) == "Sure. " + ONE["lfm2"]


def test_gemma4_values():
    args = {"b": [1, None, True], "a": {"y": "s", "x": 1.5}}
    assert (format_function("gemma4", json.dumps({"name": "f", "arguments": args}), THOUGHT)
            == '<|tool_call>call:f{a:{x:1.5,y:<|"|>s<|"|>},b:[1,null,true]}<tool_call|>')


def test_tool_lists(monkeypatch):
    monkeypatch.setattr(tools, "today", lambda: "26 Jul 2024")
    wrapped = {"type": "function", "function": TOOLS[0]}
    text = json.dumps(TOOLS)
    assert format_tools("default", text) == (
        "You have access to the following tools:\n> Tool Name: test_tool\nTool Description: tool_desc\nTool Args:\n"
        "  - foo (string, required): foo_desc\n  - bar (number): bar_desc\n\n"
        "Use the following format if using a tool:\n```\nAction: tool name (one of [test_tool])\n"
        "Action Input: the input to the tool, in a JSON format representing "
        'the kwargs (e.g. ```{"input": "hello world", "num_beams": 5}```)\n```\n')
    assert format_tools("glm4", text) == (
        "你是一个名为 ChatGLM 的人工智能助手。你是基于智谱 AI 公司训练的语言模型 GLM-4 模型开发的，"
        "你的任务是针对用户的问题和要求提供适当的答复和支持。\n\n# 可用工具\n\n"
        f"## test_tool\n\n{json.dumps(TOOLS[0], indent=4, ensure_ascii=False)}\n在调用上述函数时，请使用 Json 格式表示调用的参数。")
    assert format_tools("llama3", text) == (
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou have access to the following functions. "
        "To call a function, please respond with JSON for a function call. "
        'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}. '
        f"Do not use variables.\n\n{json.dumps(wrapped, indent=4, ensure_ascii=False)}\n\n")
    assert format_tools("mistral", text) == f"[AVAILABLE_TOOLS] {json.dumps([wrapped])}[/AVAILABLE_TOOLS]"
    assert format_tools("lfm2", text) == f"List of tools: <|tool_list_start|>{json.dumps(TOOLS)}<|tool_list_end|>"
    assert format_tools("gemma4", text) == (
        'declaration:test_tool{description:<|"|>tool_desc<|"|>,parameters:{properties:{foo:{description:<|"|>foo_desc'
        '<|"|>,type:<|"|>STRING<|"|>},bar:{description:<|"|>bar_desc<|"|>,type:<|"|>NUMBER<|"|>}},required:[<|"|>foo'
        '<|"|>],type:<|"|>OBJECT<|"|>}}')
    assert f"<tools>\n{json.dumps(wrapped)}\n</tools>" in format_tools("qwen", text)
    assert format_tools("ling", text) == format_tools("qwen", text)[2:] + "\ndetailed thinking off"
    assert f"<tools>\n{json.dumps(TOOLS[0])}\n</tools>" in format_tools("qwen3_5", text)  # unwrapped schemas
    assert f"<tools>\n<tool>{json.dumps(TOOLS[0])}</tool>\n</tools>" in format_tools("minimax2", text)
    assert f"parameters of these tools.\n{json.dumps(TOOLS)}\n工具调用" in format_tools("seed_oss", text)
    assert format_tools("qwen", "[]") == ""
