"""Tool calls read back from replies: the inverse of format_function for every format, and text stays text."""

import json

import pytest

from tunesmith.templates.tool_calls import ParsedReply, ToolCall, parse_tool_calls
from tunesmith.templates.tools import FORMATS, format_function

WEATHER = {"name": "get_weather", "arguments": {"city": "Paris", "days": 3, "units": ["c", "f"], "exact": True}}
TIME = {"name": "get_time", "arguments": {"zone": "Europe/Paris"}}


def _expected(*calls):
    return tuple(ToolCall(c["name"], json.dumps(c["arguments"], ensure_ascii=False)) for c in calls)


@pytest.mark.parametrize("fmt", FORMATS)
def test_one_call_round_trips(fmt):
    text = format_function(fmt, json.dumps(WEATHER), ("<think>", "</think>"))
    parsed = parse_tool_calls(fmt, text)
    assert parsed is not None, text
    assert [c.name for c in parsed.calls] == ["get_weather"]
    assert json.loads(parsed.calls[0].arguments) == WEATHER["arguments"]
    assert parsed.content == ""


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "glm4"])  # GLM-4 has no parallel calls
def test_parallel_calls_round_trip_in_order(fmt):
    text = format_function(fmt, json.dumps([WEATHER, TIME]), ("<think>", "</think>"))
    parsed = parse_tool_calls(fmt, text)
    assert parsed is not None, text
    assert [(c.name, json.loads(c.arguments)) for c in parsed.calls] == [
        ("get_weather", WEATHER["arguments"]), ("get_time", TIME["arguments"])]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("reply", ["The weather in Paris is sunny.", "", "{\"answer\": 4}", "[1, 2, 3]",
                                   "Action: get_weather\nAction Input: not json", "<tool_call>\n{oops}\n</tool_call>"])
def test_plain_text_is_not_a_call(fmt, reply):
    assert parse_tool_calls(fmt, reply) is None


def test_a_thought_before_the_call_is_kept_as_content():
    text = format_function("qwen", "<think>I need the weather.</think>" + json.dumps(WEATHER), ("<think>", "</think>"))
    parsed = parse_tool_calls("qwen", text)
    assert parsed == ParsedReply("<think>I need the weather.</think>", _expected(WEATHER))


def test_text_after_the_calls_makes_it_text():
    text = format_function("qwen", json.dumps(WEATHER), ("<think>", "</think>")) + "\nand then some prose"
    assert parse_tool_calls("qwen", text) is None


def test_hand_written_replies():
    assert parse_tool_calls("default", 'Action: get_time\nAction Input: {"zone": "UTC"}').calls == _expected(
        {"name": "get_time", "arguments": {"zone": "UTC"}})
    assert parse_tool_calls("llama3", '{"name": "get_time", "parameters": {"zone": "UTC"}}').calls == _expected(
        {"name": "get_time", "arguments": {"zone": "UTC"}})
    assert parse_tool_calls("mistral", '[TOOL_CALLS][{"name": "f", "arguments": "{\\"a\\": 1}"}]').calls == _expected(
        {"name": "f", "arguments": {"a": 1}})
    # LLaMA-Factory's variants: MiniMax-M2 inside its wrapper, GLM-4-MoE with a closing tag
    assert parse_tool_calls("minimax2", '<minimax:tool_call>\n<invoke name="f">\n<parameter name="a">x y'
                                        '</parameter>\n</invoke>\n</minimax:tool_call>').calls == _expected(
        {"name": "f", "arguments": {"a": "x y"}})
    assert parse_tool_calls("glm4_moe", "<tool_call>f\n<arg_key>a</arg_key>\n<arg_value>[1, 2]</arg_value>"
                                        "\n</tool_call>").calls == _expected({"name": "f", "arguments": {"a": [1, 2]}})
    assert parse_tool_calls("lfm2", '<|tool_call_start|>[f(a="x", b=-2, c=[true, null])]<|tool_call_end|>').calls \
        == _expected({"name": "f", "arguments": {"a": "x", "b": -2, "c": [True, None]}})


def test_arguments_must_be_an_object():
    assert parse_tool_calls("qwen", '<tool_call>\n{"name": "f", "arguments": [1]}\n</tool_call>') is None
    assert parse_tool_calls("llama3", '{"name": "", "parameters": {}}') is None
    assert parse_tool_calls("lfm2", "<|tool_call_start|>[f(1)]<|tool_call_end|>") is None


def test_unknown_format():
    with pytest.raises(ValueError, match="unknown tool format"):
        parse_tool_calls("nope", "x")
