"""Videos in chat: a vision-language model's prompt expands `<video>` through the family's plugin, and greedy
generation through the engine equals transformers' generate on inputs built independently (frames decoded here
with PyAV at the indices LLaMA-Factory samples, the checkpoint's video processor settings, video pads counted from
its grids, mm_token_type_ids 2 at them, Qwen2.5-VL's second_per_grid_ts worked out by hand). Video requests batch
exactly (with image and text rows); the chat loop's `/video PATH`, `--video`, and clear refusals."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from tunesmith.cli import main
from tunesmith.config.errors import ConfigError
from tunesmith.infer import hf_engine
from tunesmith.infer.chat import chat_loop, chat_once
from tunesmith.infer.engine import InvalidRequest
from tunesmith.types import Conversation, Message

from .test_vision_chat import QUESTION, Recorder, engine_for, images, sharp_models  # noqa: F401 - fixtures

DEMO = Path(__file__).resolve().parents[2] / "data" / "mllm_demo_data"
BALL, SQUARE = DEMO / "1.mp4", DEMO / "3.mp4"  # 64x48, 16 frames at 8 fps; 64x64, 20 frames at 10 fps (2 s each)


def decoded_frames(path: Path, indices: list[int]) -> list:
    import av

    with av.open(str(path)) as container:
        frames = [frame.to_image() for frame in container.decode(video=0)]
    return [frames[i] for i in indices]


def reference_generate(engine, model_dir: Path, max_new_tokens: int):
    """transformers' generate on the ball video's inputs built here: 2 s sampled at video_fps 2 = 4 frames,
    spread evenly over frames 0..15 (0, 5, 10, 15), at their own size (64x48 is inside the pixel limits)."""
    from transformers import AutoModelForImageTextToText

    from tunesmith.model.qwen_video import QwenVideoProcessor

    family = engine.vision.model_type
    settings = json.loads((model_dir / "video_preprocessor_config.json").read_text())
    processor = QwenVideoProcessor.from_dict("qwen2_vl", settings)
    features = processor([decoded_frames(BALL, [0, 5, 10, 15])])
    pads = int(features["video_grid_thw"].prod()) // processor.merge_size ** 2
    conv = Conversation((Message("user", f"<|vision_start|><|video_pad|><|vision_end|>{QUESTION}"),))
    text = engine.template.generation_prompt(conv, "", "", engine.default_system)
    text = text.replace("<|video_pad|>", "<|video_pad|>" * pads)
    ids = torch.tensor([engine.tokenizer.encode(text, add_special_tokens=False)])
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), **features,
              "mm_token_type_ids": (ids == engine.tokenizer.convert_tokens_to_ids("<|video_pad|>")).long() * 2}
    if family == "qwen2_5_vl":
        inputs["second_per_grid_ts"] = torch.tensor([2 / 2.0])  # temporal patch of 2 frames, 2 frames a second
    model = AutoModelForImageTextToText.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        out = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=engine.stop_ids,
                             pad_token_id=engine.pad_id, suppress_tokens=engine.suppress)
    generated = out[0, ids.shape[1]:].tolist()
    ends = [i for i, token in enumerate(generated) if token in engine.stop_ids]
    return inputs, generated[:ends[0] + 1] if ends else generated


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_greedy_video_generation_equals_transformers_generate(family, sharp_models):
    model_dir = sharp_models[family]
    engine = engine_for(model_dir, template="qwen2_vl", max_new_tokens=10)
    inputs, expected = reference_generate(engine, model_dir, 10)
    assert inputs["video_grid_thw"].tolist() == [[2, 4, 4]]  # 4 frames in 2 temporal patches; 56x56 in 14-px
    ask = [{"role": "user", "content": QUESTION, "videos": [str(BALL)]}]
    prompt = engine.prompt_ids(ask)
    assert list(prompt) == inputs["input_ids"][0].tolist()
    assert prompt.media.token_types == inputs["mm_token_type_ids"][0].tolist() and 2 in prompt.media.token_types
    assert sorted(prompt.media.features) == sorted(k for k in inputs if k not in ("input_ids", "attention_mask",
                                                                                  "mm_token_type_ids"))
    for key, value in prompt.media.features.items():
        torch.testing.assert_close(value, inputs[key], msg=key)
    reply = engine.chat(ask)
    stopped = expected[-1] in engine.stop_ids
    assert reply.text == engine.tokenizer.decode(expected[:-1] if stopped else expected, skip_special_tokens=True)
    assert reply.completion_tokens == len(expected) and len(set(expected)) > 2
    other = engine.chat([{"role": "user", "content": QUESTION, "videos": [str(SQUARE)]}])
    assert other.text != reply.text  # the video decides the reply


def test_video_placeholders(qwen2_vl_model, qwen3_vl_model, images):
    engine = engine_for(qwen2_vl_model, template="qwen2_vl")
    front = engine.prompt_ids([{"role": "user", "content": QUESTION, "videos": [str(BALL)],
                                "images": [str(images["red"])]}])
    marked = engine.prompt_ids([{"role": "user", "content": f"<video><image>{QUESTION}", "videos": [str(BALL)],
                                 "images": [str(images["red"])]}])
    assert list(front) == list(marked)  # videos go in front of images, as LLaMA-Factory's chat puts them
    text = engine.tokenizer.decode(marked)
    assert text.count("<|video_pad|>") == 8 and text.count("<|image_pad|>") == 4
    assert sorted(marked.media.features) == ["image_grid_thw", "pixel_values", "pixel_values_videos",
                                             "video_grid_thw"]
    with pytest.raises(InvalidRequest, match=r"holds 2 `<video>` placeholder\(s\) but 1 video\(s\)"):
        engine.prompt_ids([{"role": "user", "content": "<video> and <video>", "videos": [str(BALL)]}])
    with pytest.raises(InvalidRequest, match=r"1 `<video>` placeholder\(s\) in the messages but 0 videos"):
        engine.prompt_ids([{"role": "user", "content": "<video> what happens?"}])
    with pytest.raises(InvalidRequest, match=r"vision token .* as text"):
        engine.prompt_ids([{"role": "user", "content": "<|video_pad|>", "videos": [str(BALL)]}])

    qwen3 = engine_for(qwen3_vl_model, template="qwen3_vl_nothink")  # one timestamped block per temporal patch
    text = qwen3.tokenizer.decode(qwen3.prompt_ids([{"role": "user", "content": QUESTION, "videos": [str(BALL)]}]))
    assert "<0.3 seconds><|vision_start|>" in text and "<1.6 seconds><|vision_start|>" in text


def test_video_requests_batch_exactly(sharp_models, images, monkeypatch):
    monkeypatch.setattr(hf_engine, "GATHER_SECONDS", 0.5)  # requests started together share a round
    batched = engine_for(sharp_models["qwen2_5_vl"], template="qwen2_vl", max_new_tokens=8)
    single = engine_for(sharp_models["qwen2_5_vl"], template="qwen2_vl", max_new_tokens=8, infer_max_batch=1)
    asks = [[{"role": "user", "content": QUESTION, "videos": [str(BALL)]}],
            [{"role": "user", "content": "Describe <image> briefly.", "images": [str(images["wide"])]}],
            [{"role": "user", "content": "Hello there"}],
            [{"role": "user", "content": "<image> then <video>?", "images": [str(images["blue"])],
              "videos": [str(SQUARE)]}],
            [{"role": "user", "content": "Which one moves?", "videos": [str(SQUARE), str(BALL)]}]]
    alone = [single.chat(ask) for ask in asks]
    with ThreadPoolExecutor(len(asks)) as pool:
        together = list(pool.map(batched.chat, asks))
    assert max(batched.batch_sizes) > 1, "the requests were not batched"
    assert len({reply.text for reply in alone}) >= 4  # the requests get replies of their own
    for reply, solo in zip(together, alone):
        assert (reply.text, reply.finish_reason, reply.completion_tokens, reply.prompt_tokens) == (
            solo.text, solo.finish_reason, solo.completion_tokens, solo.prompt_tokens)


def test_chat_loop_attaches_videos(qwen2_vl_model, lora_run, tmp_path, capsys):
    recorder = Recorder(engine_for(qwen2_vl_model, template="qwen2_vl", max_new_tokens=2))
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video")
    lines = (f"/video {BALL}\n{QUESTION}\n/video {tmp_path / 'missing.mp4'}\n/video {not_video}\n/video\n"
             f"/video '{SQUARE}'\nclear\nAnd now?\nexit\n")
    out = io.StringIO()
    assert chat_loop(recorder, inp=io.StringIO(lines), out=out) == 0
    first, second = recorder.calls
    assert first == [{"role": "user", "content": QUESTION, "videos": [str(BALL)]}]
    assert second == [{"role": "user", "content": "And now?"}]  # clear dropped the waiting video
    text = out.getvalue()
    assert "`/video PATH` a video" in text and f"[video {BALL} attached to your next message (1 waiting)]" in text
    assert "missing.mp4: file not found" in text and "not a video PyAV can open" in text
    assert "[usage: /video PATH attaches a video file to your next message]" in text

    assert main(["chat", str(qwen2_vl_model), "template=qwen2_vl", "do_sample=false", "max_new_tokens=2",
                 "--query", QUESTION, "--video", str(BALL)]) == 0
    main(["chat", "--help"])
    assert "--video PATH" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="video .*: this model reads text only"):
        chat_once(engine_for(lora_run), QUESTION, videos=[str(BALL)])
