"""`tunesmith api` with videos: OpenAI-style `video_url` content parts (data:video/...;base64 URLs, local files
under --media-dir, remote URLs only when allowed) give the reply the engine gives for the same video file, and
every refused or unreadable video is a 400 that says why."""

from __future__ import annotations

import base64
import shutil

import httpx2 as httpx
import openai
import pytest

from tunesmith.config.load import build_config
from tunesmith.infer.backends import create_engine

from ..infer.test_video_chat import BALL, SQUARE
from ..infer.test_vision_chat import QUESTION, colour_images, sharpened
from .test_api import KEY, serving
from .test_api_images import post, refused


def video_url(path) -> str:
    return "data:video/mp4;base64," + base64.b64encode(path.read_bytes()).decode()


def ask(url: str, text: str = QUESTION) -> list[dict]:
    return [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}},
                                         {"type": "text", "text": text}]}]


@pytest.fixture(scope="module")
def engine(qwen2_vl_model, tmp_path_factory):
    model = sharpened(qwen2_vl_model, tmp_path_factory.mktemp("sharp") / "qwen2_vl")  # replies depend on the video
    values = {"model_name_or_path": str(model), "template": "qwen2_vl", "max_new_tokens": 8}
    return create_engine(build_config({k: (v, "test") for k, v in values.items()}, purpose="infer"))


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    shutil.copy(BALL, folder / "ball.mp4")
    colour_images(folder)
    return folder


@pytest.fixture(scope="module")
def server(engine, media):
    with serving(engine, media_dirs=(str(media),)) as url:
        yield url


def test_video_parts_answer_as_the_engine_does(server, engine, media):
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=120)
    replies = []
    for path in (BALL, SQUARE):
        expected = engine.chat([{"role": "user", "content": QUESTION, "videos": [str(path)]}], temperature=0)
        done = client.chat.completions.create(model="tiny", messages=ask(video_url(path)), temperature=0)
        assert done.choices[0].message.content == expected.text
        assert done.usage.prompt_tokens == expected.prompt_tokens and done.usage.completion_tokens == \
            expected.completion_tokens
        replies.append(expected.text)
    assert replies[0] != replies[1]  # the video decides the reply
    local = post(server, ask(str(media / "ball.mp4"))).json()
    assert local["choices"][0]["message"]["content"] == engine.chat(
        [{"role": "user", "content": QUESTION, "videos": [str(BALL)]}], temperature=0).text
    mixed = [{"role": "user", "content": [{"type": "text", "text": "First"},
                                          {"type": "image_url", "image_url": {"url": str(media / "red.png")}},
                                          {"type": "text", "text": "then"},
                                          {"type": "video_url", "video_url": {"url": video_url(SQUARE)}}]}]
    expected = engine.chat([{"role": "user", "content": "First<image>then<video>", "images": [str(media / "red.png")],
                             "videos": [str(SQUARE)]}], temperature=0)
    done = post(server, mixed).json()
    assert (done["choices"][0]["message"]["content"], done["usage"]["prompt_tokens"]) == (
        expected.text, expected.prompt_tokens)


def test_bad_videos_are_400s_that_say_why(server, engine, media, tmp_path):
    error = refused(post(server, ask("data:video/mp4;base64," + base64.b64encode(b"hello").decode())))
    assert "not a video PyAV can open" in error["message"] and error["param"] == "messages.0.content.0.video_url.url"
    assert "not valid base64" in refused(post(server, ask("data:video/mp4;base64,abc$")))["message"]
    assert "must be `data:video/<type>;base64,<data>`" in refused(post(server, ask(video_url(BALL).replace(
        "data:video", "data:image"))))["message"]
    outside = tmp_path / "ball.mp4"
    shutil.copy(BALL, outside)
    assert "is outside the folders" in refused(post(server, ask(str(outside))))["message"]
    error = refused(post(server, ask("https://example.com/ball.mp4")))
    assert "remote video URLs are not fetched" in error["message"] and "--allow-remote-media" in error["message"]
    two = [{"role": "user", "content": [{"type": "text", "text": "<video> and <video>?"},
                                        {"type": "video_url", "video_url": {"url": video_url(BALL)}}]}]
    assert "holds 3 `<video>` placeholder(s) but 1 video(s)" in refused(post(server, two))["message"]
    with serving(engine, media_dirs=(str(media),), max_request_bytes=2000) as small:  # the video is 2367 bytes
        error = refused(post(small, ask(str(media / "ball.mp4"))))
        assert "is larger than 2000 bytes" in error["message"]


def test_a_text_model_refuses_videos(lora_run):
    cfg = build_config({"model_name_or_path": (str(lora_run), "test"), "max_new_tokens": (4, "test")},
                       purpose="infer")
    with serving(create_engine(cfg)) as url:
        assert "this model reads text only" in refused(post(url, ask(video_url(BALL))))["message"]
