"""`tunesmith api` with images: a tiny vision-language model trained on coloured squares answers "what colour"
through OpenAI `image_url` content parts (data: URLs; local files only under --media-dir; remote URLs only when
allowed, and never from a private address), and every refused or unreadable image is a 400 that says why."""

from __future__ import annotations

import base64
import io
import os

import httpx2 as httpx
import openai
import pytest
from PIL import Image

from tunesmith.config.errors import ConfigError
from tunesmith.config.load import build_config
from tunesmith.infer.backends import create_engine
from tunesmith.serve.protocol import ChatMessage
from tunesmith.serve.settings import api_settings

from ..infer.test_vision_chat import COLOURS, QUESTION, colour_images, train_colours
from .test_api import KEY, auth, serving


def data_url(path, kind: str = "png") -> str:
    return f"data:image/{kind};base64," + base64.b64encode(path.read_bytes()).decode()


def ask(url: str, text: str = QUESTION) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": text},
                                         {"type": "image_url", "image_url": {"url": url}}]}]


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory, qwen2_vl_model):
    return train_colours(tmp_path_factory.mktemp("colours"), qwen2_vl_model)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return colour_images(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="module")
def engine(colour_run):
    cfg = build_config({"model_name_or_path": (str(colour_run), "test"), "max_new_tokens": (8, "test")},
                       purpose="infer")
    return create_engine(cfg)


@pytest.fixture(scope="module")
def server(engine, images):
    with serving(engine, media_dirs=(str(images["red"].parent),)) as url:
        yield url


def post(url: str, messages: list[dict], **extra) -> httpx.Response:
    body = {"model": "tiny", "messages": messages, "temperature": 0, "max_tokens": 8, **extra}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=auth(), timeout=120)


def refused(response: httpx.Response) -> dict:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return error


def test_trained_model_answers_image_questions(server, engine, images):
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=120)
    for name in COLOURS:
        done = client.chat.completions.create(model="tiny", messages=ask(data_url(images[name])), temperature=0)
        assert (done.choices[0].message.content, done.choices[0].finish_reason) == (name, "stop")
        expected = engine.prompt_ids([{"role": "user", "content": QUESTION, "images": [str(images[name])]}])
        assert done.usage.prompt_tokens == len(expected)  # the image part went in front of the text, as 4 tokens
        chunks = client.chat.completions.create(model="tiny", messages=ask(data_url(images[name])), temperature=0,
                                                stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == name


def test_each_image_part_stands_where_it_is():
    message = ChatMessage(role="user", content=[{"type": "text", "text": "Is"},
                                                {"type": "image_url", "image_url": {"url": "data:a"}},
                                                {"type": "text", "text": "like"},
                                                {"type": "image_url", "image_url": {"url": "data:b", "detail": "low"}},
                                                {"type": "text", "text": "?"}])
    assert message.as_dict("<image>", 2) == {"role": "user", "content": "Is<image>like<image>?", "image_urls": [
        ("data:a", "messages.2.content.1"), ("data:b", "messages.2.content.3")]}


def test_local_files_only_under_the_media_dir(server, engine, images, tmp_path):
    red = images["red"]
    assert post(server, ask(str(red))).json()["choices"][0]["message"]["content"] == "red"
    assert post(server, ask(red.as_uri())).json()["choices"][0]["message"]["content"] == "red"
    outside = tmp_path / "blue.png"
    outside.write_bytes(images["blue"].read_bytes())
    error = refused(post(server, ask(str(outside))))
    assert "is outside the folders this server reads images and videos from" in error["message"]
    assert error["param"] == "messages.0.content.1.image_url.url"
    link = red.parent / "link.png"  # a link inside the folder to a file outside it
    link.symlink_to(outside)
    try:
        assert "is outside the folders" in refused(post(server, ask(str(link))))["message"]
    finally:
        link.unlink()
    error = refused(post(server, ask(str(red.parent / "missing.png"))))
    assert "cannot read" in error["message"] and "missing.png" in error["message"]

    with serving(engine) as default:  # no --media-dir: no local files at all
        error = refused(post(default, ask(str(red))))
        assert "local image files are not served" in error["message"] and "--media-dir" in error["message"]


def test_remote_urls_off_by_default_and_never_private(server, engine):
    error = refused(post(server, ask("https://example.com/red.png")))
    assert "--allow-remote-media" in error["message"] and "API_ALLOW_REMOTE_MEDIA" in error["message"]
    with serving(engine, allow_remote_media=True) as url:
        error = refused(post(url, ask(f"{url}/v1/models")))  # this very server: a loopback address
        assert "127.0.0.1, which is not a public address" in error["message"]


def test_bad_images_are_400s_that_say_why(server, images):
    assert "not valid base64" in refused(post(server, ask("data:image/png;base64,abc$")))["message"]
    assert "must be `data:image/<type>;base64,<data>`" in refused(post(server, ask("data:text/plain;base64,aGk=")))[
        "message"]
    error = refused(post(server, ask("data:image/png;base64," + base64.b64encode(b"hello").decode())))
    assert "not an image format Pillow can read" in error["message"]
    assert error["param"] == "messages.0.content.1.image_url.url"
    buffer = io.BytesIO()
    Image.new("RGB", (56, 56), "red").save(buffer, "PNG")
    truncated = "data:image/png;base64," + base64.b64encode(buffer.getvalue()[:-40]).decode()
    assert "corrupt or truncated" in refused(post(server, ask(truncated)))["message"]
    assert "scheme ftp:// is not supported" in refused(post(server, ask("ftp://host/red.png")))["message"]
    two = [{"role": "user", "content": [{"type": "text", "text": "<image> and <image>?"},
                                        {"type": "image_url", "image_url": {"url": data_url(images["red"])}}]}]
    assert "holds 3 `<image>` placeholder(s) but 1 image(s)" in refused(post(server, two))["message"]
    assistant = [{"role": "user", "content": "hi"},
                 {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": data_url(images["red"])}}]},
                 {"role": "user", "content": QUESTION}]
    assert "only user messages carry images" in refused(post(server, assistant))["message"]
    audio = [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]
    assert "input_audio" in refused(post(server, audio))["message"]


def test_a_text_model_refuses_images(lora_run, images):
    cfg = build_config({"model_name_or_path": (str(lora_run), "test"), "max_new_tokens": (4, "test")},
                       purpose="infer")
    with serving(create_engine(cfg)) as url:
        error = refused(post(url, ask(data_url(images["red"]))))
        assert "this model reads text only" in error["message"]
        assert post(url, [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]).status_code == 200


def test_media_settings(tmp_path, lora_run):
    cfg = build_config({"model_name_or_path": (str(lora_run), "test")}, purpose="infer")
    assert api_settings(cfg, env={}).media_dirs == () and not api_settings(cfg, env={}).allow_remote_media
    env = {"API_MEDIA_DIR": os.pathsep.join([str(tmp_path), str(tmp_path / ".")]), "API_ALLOW_REMOTE_MEDIA": "true"}
    settings = api_settings(cfg, env=env)
    assert settings.media_dirs == (str(tmp_path), str(tmp_path)) and settings.allow_remote_media
    given = api_settings(cfg, env=env, media_dirs=[str(tmp_path / ".")], allow_remote_media=False)
    assert given.media_dirs == (str(tmp_path),) and not given.allow_remote_media  # the command line wins
    keys = {"model_name_or_path": (str(lora_run), "test"), "api_media_dir": (str(tmp_path), "test"),
            "api_allow_remote_media": (False, "test")}
    configured = api_settings(build_config(keys, purpose="infer"), env=env)
    assert configured.media_dirs == (str(tmp_path),) and not configured.allow_remote_media  # config over env
    with pytest.raises(ConfigError, match="API_MEDIA_DIR: .*missing is not a directory"):
        api_settings(cfg, env={"API_MEDIA_DIR": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="API_ALLOW_REMOTE_MEDIA must be 1 or 0"):
        api_settings(cfg, env={"API_ALLOW_REMOTE_MEDIA": "maybe"})
