"""`tunesmith api`: the real openai client against a server on a loopback port, API keys, OpenAI-style 4xx
errors for bad requests (text that is not Unicode, out-of-range numbers, oversized bodies), concurrent requests,
a slow prompt that holds up no one else, client disconnects, /docs, settings, and the command itself."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time

import httpx2 as httpx
import openai
import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.config.load import build_config
from tunesmith.infer.backends import create_engine
from tunesmith.serve.app import create_app, run_server
from tunesmith.serve.settings import ApiSettings, api_settings, exposure_warning, is_loopback

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


@contextlib.contextmanager
def serving(engine, **settings):
    """The API app with ``settings`` on a loopback port, in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    app = create_app(engine, ApiSettings(host="127.0.0.1", port=port, api_key=KEY, model_name="tiny", **settings))
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


@pytest.fixture(scope="module")
def server(engine):
    with serving(engine) as url:
        yield url


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
    ({"model": "tiny", "messages": QUESTION, "tools": [{"type": "function"}]}, "tools.0.function"),
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


def post_raw(server: str, body: bytes, **kwargs) -> httpx.Response:
    return httpx.post(f"{server}/v1/chat/completions", content=body, timeout=60,
                      headers={"Content-Type": "application/json", **auth()}, **kwargs)


@pytest.mark.parametrize("body,param,message", [
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi \\ud800 there"}]}', "messages.0.content",
     "messages[0].content is not valid Unicode text: it holds a lone surrogate (U+D800) at character 3"),
    (b'{"model": "tiny", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": '
     b'[{"type": "text", "text": "\\udfff"}]}]}', "messages.1.content", "lone surrogate (U+DFFF)"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stop": ["\\udc80"]}', "stop",
     "stop string 0 is not valid Unicode text"),
    (json.dumps({"model": "tiny", "messages": QUESTION, "seed": 2**70}).encode(), "seed",
     "seed: Input should be less than or equal to 9223372036854775807"),
    (json.dumps({"model": "tiny", "messages": QUESTION, "seed": -2**70}).encode(), "seed",
     "seed: Input should be greater than or equal to -9223372036854775808"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi \xff there"}]}', None,
     "'utf-8' codec can't decode byte 0xff"),
], ids=["lone-surrogate", "surrogate-in-part", "surrogate-stop", "seed-2**70", "seed--2**70", "body-not-utf8"])
def test_text_that_is_not_unicode_and_out_of_range_seeds_are_400s(server, body, param, message):
    response = post_raw(server, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert message in error["message"]


def test_the_largest_seeds_still_sample(client):
    """A 64-bit seed is taken, and so is seed + i for each of n replies."""
    for seed in (2**63 - 1, -2**63):
        done = client.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=2, seed=seed, n=2,
                                              temperature=1.0)
        assert [c.finish_reason in ("stop", "length") for c in done.choices] == [True, True]


def test_a_body_over_the_size_limit_is_413_before_it_is_parsed(server):
    """The default limit (4 MiB), whether the client sends a Content-Length or streams the body in chunks."""
    body = json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "word " * 1_000_000}]}).encode()
    assert len(body) > ApiSettings().max_request_bytes == 4 * 1024 * 1024
    sized = post_raw(server, body)
    chunked = post_raw(server, (body[i:i + 65536] for i in range(0, len(body), 65536)))
    for response in (sized, chunked):
        assert response.status_code == 413, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["message"] == ("the request body is larger than this server's limit of 4194304 bytes (the "
                                    "environment variable API_MAX_REQUEST_BYTES sets it)")
    assert post_raw(server, json.dumps({"model": "tiny", "messages": QUESTION, "max_tokens": 2}).encode()
                    ).status_code == 200  # the server goes on


def test_the_size_limit_is_a_setting(engine):
    small = json.dumps({"model": "tiny", "messages": QUESTION, "max_tokens": 2}).encode()
    with serving(engine, max_request_bytes=len(small)) as url:
        assert post_raw(url, small).status_code == 200
        over = post_raw(url, small + b" ")
        assert over.status_code == 413 and f"limit of {len(small)} bytes" in over.json()["error"]["message"]
    with serving(engine, max_request_bytes=0) as url:  # 0: no limit
        body = json.dumps({"model": "tiny", "messages": QUESTION, "max_tokens": 2, "pad": "x" * 5_000_000})
        assert post_raw(url, body.encode()).status_code == 200


class SlowTokenizer:
    """The engine's tokenizer, except that a text holding ``mark`` waits in encode until released."""

    def __init__(self, tokenizer, mark: str):
        self.tokenizer, self.mark = tokenizer, mark
        self.entered, self.release = threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)

    def __len__(self) -> int:
        return len(self.tokenizer)

    def encode(self, text, **kwargs):
        if self.mark in text:
            self.entered.set()
            self.release.wait(timeout=120)
        return self.tokenizer.encode(text, **kwargs)


@pytest.mark.parametrize("stream", [False, True])
def test_a_slow_prompt_does_not_hold_up_other_clients(server, engine, monkeypatch, stream):
    """Tokenization runs off the event loop: while one request's prompt is still being tokenized, another
    request is answered (before the fix the loop itself waited, and the small request timed out)."""
    slow = SlowTokenizer(engine.tokenizer, "SLOW-PROMPT")
    monkeypatch.setattr(engine, "tokenizer", slow)
    large = {"model": "tiny", "messages": [{"role": "user", "content": "SLOW-PROMPT " + "word " * 50_000}],
             "max_tokens": 2, "stream": stream}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(httpx.post, f"{server}/v1/chat/completions", json=large, headers=auth(), timeout=300)
        try:
            assert slow.entered.wait(timeout=60), "the large request never reached the tokenizer"
            small = httpx.post(f"{server}/v1/chat/completions", headers=auth(), timeout=30,
                               json={"model": "tiny", "messages": QUESTION, "max_tokens": 2})
            assert small.status_code == 200 and small.json()["choices"][0]["finish_reason"] in ("stop", "length")
            assert httpx.get(f"{server}/v1/models", headers=auth(), timeout=30).status_code == 200
            assert not pending.done()  # the large one is still in its tokenizer
        finally:
            slow.release.set()
        answered = pending.result()
    assert answered.status_code == 400 and "this model's context is" in answered.json()["error"]["message"]


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
    assert api_settings(cfg, {}) == ApiSettings("127.0.0.1", 8000, None, "gpt-3.5-turbo", 4 * 1024 * 1024)
    assert api_settings(cfg, {"API_HOST": "0.0.0.0"}).host == "0.0.0.0"
    assert api_settings(cfg, {"API_MAX_REQUEST_BYTES": "1_000_000"}).max_request_bytes == 1_000_000
    assert api_settings(cfg, {"API_MAX_REQUEST_BYTES": "0"}).max_request_bytes == 0
    for bad, message in (("4MB", "must be a number of bytes"), ("-1", "must be 0 (no limit) or more")):
        with pytest.raises(ConfigError, match=re.escape(f"API_MAX_REQUEST_BYTES {message}")):
            api_settings(cfg, {"API_MAX_REQUEST_BYTES": bad})
    assert api_settings(build_config({"model_name_or_path": ("m", "test"), "api_host": ("::", "test")},
                                     purpose="infer"), {}).host == "::"
    given = build_config({"model_name_or_path": ("m", "test"), "api_port": (7000, "test"),
                          "api_key": ("x", "test")}, purpose="infer")
    assert api_settings(given, env) == ApiSettings("127.0.0.2", 7000, "x", "mine")


def test_an_api_open_to_the_network_without_a_key_is_warned_about(engine, monkeypatch, caplog, capsys):
    assert all(is_loopback(host) for host in ("127.0.0.1", "127.0.0.5", "::1", "localhost"))
    assert not any(is_loopback(host) for host in ("0.0.0.0", "::", "192.168.1.10", "no-such-host.invalid"))
    assert exposure_warning(ApiSettings()) is None  # the default: this machine only
    assert exposure_warning(ApiSettings(host="0.0.0.0", api_key="k")) is None
    import uvicorn

    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.append(kwargs))
    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        run_server(engine, ApiSettings(host="0.0.0.0", port=8123))
        run_server(engine, ApiSettings(host="127.0.0.1", port=8123))
    assert [kwargs["host"] for kwargs in served] == ["0.0.0.0", "127.0.0.1"]
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert record.getMessage().startswith("the API listens on 0.0.0.0:8123 with no API key: anyone who can reach "
                                          "this machine can use the model")
    assert "http://localhost:8123/v1" in capsys.readouterr().out


def test_api_command_serves_until_stopped(lora_run):
    port = free_port()  # no --host: the default is this machine only
    env = {**{k: v for k, v in os.environ.items() if k != "API_HOST"}, "API_KEY": KEY, "API_MODEL_NAME": "from-env"}
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith.cli", "api", str(lora_run), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
        out, err = proc.communicate(timeout=60)
    assert f"http://127.0.0.1:{port}/docs" in out and "no API key" not in err


def test_api_usage_errors(capsys):
    from tunesmith.cli import main

    assert main(["api", "model_name_or_path=m", "--port"]) == 2
    assert "--port needs a value" in capsys.readouterr().err
    assert main(["api", "model_name_or_path=m", "--port", "99999"]) == 2
    assert "`api_port` must be in 0..65535" in capsys.readouterr().err
