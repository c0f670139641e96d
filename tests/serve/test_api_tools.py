"""Tool calling through the API with the real openai client: tools reach the prompt in the template's format,
a reply that is a call comes back as `tool_calls` (streamed too), the call and the tool's result go back in, and
a reply that is not a call stays text. The model's replies are scripted (a tiny random model writes no calls);
the prompt it would have seen is recorded and checked."""

from __future__ import annotations

import json

import httpx2 as httpx
import openai
import pytest

from tunesmith.config.load import build_config
from tunesmith.infer.backends import create_engine
from tunesmith.infer.engine import Engine, Reply
from tunesmith.templates.tools import format_function

from .test_api import KEY, auth, serving

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ASK = [{"role": "user", "content": "Weather in Paris?"}]


class ScriptedEngine(Engine):
    """The real engine's tokenizer and template; replies come from a script, prompts are recorded."""

    name = "scripted"

    def __init__(self, real: Engine):
        super().__init__(real.cfg, real.tokenizer, real.template, real.stop_ids, real.default_system,
                         real.context_limit)
        self.replies: list[str] = []
        self.prompts: list[str] = []

    def generate(self, prompt_ids, options, on_text=None, cancel=None) -> Reply:
        self.prompts.append(self.tokenizer.decode(prompt_ids))
        text = self.replies.pop(0)
        for k in range(0, len(text), 5):  # streamed in small pieces, as a model would
            if on_text is not None:
                on_text(text[k:k + 5])
        return Reply(text, "stop", len(prompt_ids), max(1, len(text) // 4))


@pytest.fixture(scope="module")
def scripted(lora_run):
    cfg = build_config({"model_name_or_path": (str(lora_run), "test"), "max_new_tokens": (8, "test")},
                       purpose="infer")
    return ScriptedEngine(create_engine(cfg))


@pytest.fixture(scope="module")
def client(scripted):
    with serving(scripted) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=120), url


def call_text(engine: Engine, *calls: dict) -> str:
    return format_function(engine.template.tool_format, json.dumps(list(calls)), ("<think>", "</think>"))


def test_tool_call_round_trip(scripted, client):
    api, _ = client
    scripted.replies = [call_text(scripted, {"name": "get_weather", "arguments": {"city": "Paris"}}),
                        "It is sunny in Paris."]
    first = api.chat.completions.create(model="tiny", messages=ASK, tools=[WEATHER_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert "get_weather" in scripted.prompts[-1] and "The weather in a city." in scripted.prompts[-1]

    second = api.chat.completions.create(model="tiny", tools=[WEATHER_TOOL], messages=[
        *ASK, choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}])
    assert second.choices[0].message.content == "It is sunny in Paris."
    assert second.choices[0].finish_reason == "stop" and not second.choices[0].message.tool_calls
    prompt = scripted.prompts[-1]
    # the call went back in as the template writes calls, followed by the tool's result
    assert call_text(scripted, {"name": "get_weather", "arguments": {"city": "Paris"}}) in prompt
    assert prompt.index("get_weather", prompt.index("Weather in Paris?")) < prompt.index("sunny, 21 C")


def test_parallel_calls_streamed(scripted, client):
    api, _ = client
    scripted.replies = [call_text(scripted, {"name": "get_weather", "arguments": {"city": "Paris"}},
                                  {"name": "get_weather", "arguments": {"city": "Rome"}})]
    chunks = list(api.chat.completions.create(model="tiny", messages=ASK, tools=[WEATHER_TOOL], stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert not any(d.content for d in deltas)  # a call is never streamed as text
    calls = [tc for d in deltas for tc in (d.tool_calls or [])]
    assert [(tc.index, tc.function.name, json.loads(tc.function.arguments)) for tc in calls] == [
        (0, "get_weather", {"city": "Paris"}), (1, "get_weather", {"city": "Rome"})]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_text_reply_with_tools_is_text_streamed_or_not(scripted, client):
    api, _ = client
    scripted.replies = ["I cannot check the weather.", "I cannot check the weather."]
    plain = api.chat.completions.create(model="tiny", messages=ASK, tools=[WEATHER_TOOL])
    assert plain.choices[0].message.content == "I cannot check the weather."
    assert plain.choices[0].finish_reason == "stop" and not plain.choices[0].message.tool_calls
    chunks = list(api.chat.completions.create(model="tiny", messages=ASK, tools=[WEATHER_TOOL], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "I cannot check the weather."


def test_tool_choice_none_hides_the_tools_and_reads_no_calls(scripted, client):
    api, _ = client
    reply = call_text(scripted, {"name": "get_weather", "arguments": {"city": "Paris"}})
    scripted.replies = [reply]
    out = api.chat.completions.create(model="tiny", messages=ASK, tools=[WEATHER_TOOL], tool_choice="none")
    assert "get_weather" not in scripted.prompts[-1]
    assert out.choices[0].message.content == reply and out.choices[0].finish_reason == "stop"


def test_without_tools_a_call_shaped_reply_is_text(scripted, client):
    api, _ = client
    reply = call_text(scripted, {"name": "get_weather", "arguments": {"city": "Paris"}})
    scripted.replies = [reply]
    out = api.chat.completions.create(model="tiny", messages=ASK)
    assert out.choices[0].message.content == reply and out.choices[0].message.tool_calls is None


@pytest.mark.parametrize("body,param", [
    ({"tools": [{"type": "function"}]}, "tools.0.function"),
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools.0.function.name"),
    ({"tools": [WEATHER_TOOL], "tool_choice": "required"}, "tool_choice"),
    ({"tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
     "tool_choice"),
    ({"messages": [*ASK, {"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]},
        {"role": "tool", "content": "x"}]}, "messages.1.tool_calls.0.function.arguments"),
    ({"messages": [*ASK, {"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]},
        {"role": "tool", "content": "x"}]}, "messages.1.tool_calls.0.function.arguments"),
    ({"messages": [*ASK, {"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}, "messages.1.role"),
])
def test_bad_tool_requests_are_400s(client, body, param):
    _, url = client
    response = httpx.post(f"{url}/v1/chat/completions", headers=auth(), timeout=60,
                          json={"model": "tiny", "messages": ASK, **body})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
