"""`tunesmith api`: the real openai client against a server on a loopback port, API keys, OpenAI-style 4xx
errors for bad requests, concurrent requests, client disconnects, /docs, and the command itself."""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import threading
import time

import httpx2 as httpx
import openai
import pytest

from tunesmith.config.load import build_config
from tunesmith.infer.backends import create_engine
from tunesmith.serve.app import create_app
from tunesmith.serve.settings import ApiSettings, api_settings

KEY = "sk-test-key"
QUESTION = [{"role": "user", "content": "What is 1+1?"}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def engine(lora_run):
    cfg = build_config({"model_name_or_path": (str(lora_run), "test"), "max_new_tokens": (8, "test")},
                       purpose="infer")
    return create_engine(cfg)


@pytest.fixture(scope="module")
def server(engine):
    import uvicorn

    port = free_port()
    app = create_app(engine, ApiSettings(host="127.0.0.1", port=port, api_key=KEY, model_name="tiny"))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=30)
    assert not thread.is_alive()


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=120)


def auth(key: str = KEY) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_chat_completion_with_the_openai_client(client, engine):
    done = client.chat.completions.create(model="tiny", messages=QUESTION, temperature=0, max_tokens=6)
    assert done.object == "chat.completion" and done.model == "tiny" and done.id.startswith("chatcmpl-")
    [choice] = done.choices
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    expected = engine.chat(QUESTION, temperature=0, max_new_tokens=6)
    assert choice.message.content == expected.text
    assert done.usage.prompt_tokens == len(engine.prompt_ids(QUESTION)) == expected.prompt_tokens
    assert done.usage.completion_tokens == expected.completion_tokens
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens


def test_stream_with_the_openai_client(client, engine):
    chunks = list(client.chat.completions.create(model="tiny", messages=QUESTION, temperature=0, max_tokens=6,
                                                 stream=True, stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    expected = engine.chat(QUESTION, temperature=0, max_new_tokens=6)
    assert text == expected.text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [expected.finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == expected.completion_tokens


def test_sampling_options_n_seed_and_stop(client):
    kwargs = dict(model="tiny", messages=QUESTION, temperature=1.5, top_p=1.0, max_tokens=5, seed=3, n=2)
    first = client.chat.completions.create(**kwargs)
    second = client.chat.completions.create(**kwargs)
    assert [c.index for c in first.choices] == [0, 1]
    assert [c.message.content for c in first.choices] == [c.message.content for c in second.choices]
    assert first.usage.completion_tokens == sum(
        client.chat.completions.create(**{**kwargs, "n": 1, "seed": s}).usage.completion_tokens for s in (3, 4))
    for seed in range(20):  # a reply of a few characters, then a stop string taken from it cuts it there
        full = client.chat.completions.create(**{**kwargs, "n": 1, "seed": seed}).choices[0].message.content
        if len(full) > 1:
            break
    cut = client.chat.completions.create(**{**kwargs, "n": 1, "seed": seed, "stop": [full[1:]]})
    assert cut.choices[0].message.content == full[:1] and cut.choices[0].finish_reason == "stop"


def test_models_and_docs(client, server):
    assert [m.id for m in client.models.list().data] == ["tiny"]
    assert httpx.get(f"{server}/docs").status_code == 200
    schema = httpx.get(f"{server}/openapi.json").json()
    assert {"/v1/models", "/v1/chat/completions"} <= set(schema["paths"])


def test_wrong_or_missing_key_is_401(server):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server}/v1", api_key="wrong", max_retries=0).models.list()
    for headers in ({}, auth("wrong"), {"Authorization": f"Basic {KEY}"}):
        response = httpx.post(f"{server}/v1/chat/completions", json={"model": "tiny", "messages": QUESTION},
                              headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize("body,param", [
    (b"{not json", None),
    (b"[1, 2]", None),
    (b"", None),
    ({"model": "tiny"}, "messages"),
    ({"model": "tiny", "messages": []}, "messages"),
    ({"model": "tiny", "messages": QUESTION, "temperature": 3}, "temperature"),
    ({"model": "tiny", "messages": QUESTION, "top_p": 0}, "top_p"),
    ({"model": "tiny", "messages": QUESTION, "max_tokens": 0}, "max_tokens"),
    ({"model": "tiny", "messages": QUESTION, "n": 0}, "n"),
    ({"model": "tiny", "messages": QUESTION, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"model": "tiny", "messages": QUESTION, "stream": "sometimes"}, "stream"),
    ({"model": "tiny", "messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
    ({"model": "tiny", "messages": [{"role": "user"}]}, "messages.0.content"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
     "messages.1.role"),
    ({"model": "tiny", "messages": QUESTION, "tools": [{"type": "function"}]}, "tools"),
    ({"messages": QUESTION}, "model"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "x " * 5000}]}, "messages"),
])
def test_malformed_requests_get_openai_style_4xx(server, body, param):
    kwargs = {"json": body} if isinstance(body, dict) else {"content": body,
                                                           "headers": {"Content-Type": "application/json"}}
    headers = {**kwargs.pop("headers", {}), **auth()}
    response = httpx.post(f"{server}/v1/chat/completions", headers=headers, timeout=60, **kwargs)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == param


def test_unknown_route_and_method_are_json_errors(server):
    missing = httpx.get(f"{server}/v1/nothing", headers=auth())
    assert missing.status_code == 404 and "error" in missing.json()
    wrong = httpx.get(f"{server}/v1/chat/completions", headers=auth())
    assert wrong.status_code == 405 and "error" in wrong.json()


def test_sixteen_concurrent_requests_all_complete(server):
    def ask(i: int) -> tuple[int, dict]:
        body = {"model": "tiny", "messages": [{"role": "user", "content": f"What is {i}+1?"}], "max_tokens": 4,
                "stream": i % 2 == 1}
        response = httpx.post(f"{server}/v1/chat/completions", json=body, headers=auth(), timeout=300)
        if body["stream"]:
            events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
            assert events[-1] == "[DONE]"
            return response.status_code, json.loads(events[-2])
        return response.status_code, response.json()

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(ask, range(16)))
    assert [status for status, _ in results] == [200] * 16
    assert all(body["choices"][0]["finish_reason"] in ("stop", "length") for _, body in results)


@pytest.fixture()
def recorded(engine, monkeypatch) -> list:
    """The replies the engine produces, in order; no stop token, so only the token budget ends a reply."""
    replies = []
    generate = engine.generate

    def recording(*args, **kwargs):
        replies.append(generate(*args, **kwargs))
        return replies[-1]

    monkeypatch.setattr(engine, "generate", recording)
    monkeypatch.setattr(engine, "stop_ids", [])
    return replies


def test_a_client_that_goes_away_does_not_wedge_the_queue(server, client, recorded):
    replies = recorded
    body = {"model": "tiny", "messages": QUESTION, "max_tokens": 2000, "temperature": 1.0, "top_p": 1.0, "seed": 0,
            "stream": True}
    with httpx.stream("POST", f"{server}/v1/chat/completions", json=body, headers=auth(), timeout=60) as response:
        seen = 0
        for line in response.iter_lines():
            seen += line.startswith("data: ")
            if seen == 3:
                break  # a few chunks seen: hang up
    done = client.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=2)
    assert done.choices[0].finish_reason in ("stop", "length")
    abandoned = replies[0]
    assert abandoned.finish_reason == "cancelled" and abandoned.completion_tokens < 2000


def test_a_plain_request_whose_client_gave_up_is_cancelled(server, client, recorded):
    replies = recorded
    body = {"model": "tiny", "messages": QUESTION, "max_tokens": 2000, "temperature": 1.0, "top_p": 1.0, "seed": 0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server}/v1/chat/completions", json=body, headers=auth(), timeout=1.5)
    done = client.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=2)
    assert done.choices[0].finish_reason in ("stop", "length")
    assert replies[0].finish_reason == "cancelled" and replies[0].completion_tokens < 2000


def test_settings_come_from_options_then_llamafactory_environment():
    cfg = build_config({"model_name_or_path": ("m", "test")}, purpose="infer")
    env = {"API_HOST": "127.0.0.2", "API_PORT": "9001", "API_KEY": "k", "API_MODEL_NAME": "mine"}
    assert api_settings(cfg, env) == ApiSettings("127.0.0.2", 9001, "k", "mine")
    assert api_settings(cfg, {}) == ApiSettings("0.0.0.0", 8000, None, "gpt-3.5-turbo")
    given = build_config({"model_name_or_path": ("m", "test"), "api_port": (7000, "test"),
                          "api_key": ("x", "test")}, purpose="infer")
    assert api_settings(given, env) == ApiSettings("127.0.0.2", 7000, "x", "mine")


def test_api_command_serves_until_stopped(lora_run):
    port = free_port()
    env = {**os.environ, "API_KEY": KEY, "API_MODEL_NAME": "from-env"}
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith.cli", "api", str(lora_run), "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers=auth(), timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "api did not come up"
                time.sleep(0.2)
        assert response.status_code == 200 and response.json()["data"][0]["id"] == "from-env"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert f"http://127.0.0.1:{port}/docs" in out


def test_api_usage_errors(capsys):
    from tunesmith.cli import main

    assert main(["api", "model_name_or_path=m", "--port"]) == 2
    assert "--port needs a value" in capsys.readouterr().err
    assert main(["api", "model_name_or_path=m", "--port", "99999"]) == 2
    assert "`api_port` must be in 0..65535" in capsys.readouterr().err
