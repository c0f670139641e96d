"""Images in chat: a vision-language model's prompt expands `<image>` through the family's plugin, and greedy
generation through the engine equals transformers' generate on inputs built independently (the PIL image
processor's features, image pads counted from its grids, mm_token_type_ids marking them), with and without the
KV cache (without it every step recomputes the 3-D positions of prompt and generated tokens; with it transformers
continues from the prompt's rope offset). Image requests batch exactly; a trained model answers from the image;
the chat loop's `/image PATH`, `--image`, and clear refusals."""

from __future__ import annotations

import io
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from PIL import Image

from tunesmith.cli import main
from tunesmith.config.errors import ConfigError
from tunesmith.config.load import build_config
from tunesmith.infer import hf_engine
from tunesmith.infer.backends import create_engine
from tunesmith.infer.chat import chat_loop, chat_once
from tunesmith.infer.engine import InvalidRequest
from tunesmith.types import Conversation, Message

COLOURS = {"red": (220, 20, 20), "blue": (20, 20, 220)}
QUESTION = "What color is this?"


def colour_images(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, rgb in COLOURS.items():
        paths[name] = folder / f"{name}.png"
        Image.new("RGB", (56, 56), rgb).save(paths[name])
    return paths


def train_colours(root: Path, model: Path, **keys) -> Path:
    """An sft run on LLaMA-Factory's multimodal sharegpt layout: a red or blue square, answered by its colour."""
    from tunesmith.train.run import run_training

    data = root / "data"
    colour_images(data / "img")
    rows = [{"messages": [{"role": "user", "content": f"<image>{QUESTION}"},
                          {"role": "assistant", "content": name}], "images": [f"img/{name}.png"]}
            for name in ["red", "blue"] * 8]
    (data / "colours.json").write_text(json.dumps(rows))
    (data / "dataset_info.json").write_text(json.dumps({"colours": {
        "file_name": "colours.json", "formatting": "sharegpt", "columns": {"messages": "messages", "images": "images"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}}}))
    raw = {"model_name_or_path": str(model), "stage": "sft", "do_train": True, "finetuning_type": "full",
           "dataset": "colours", "dataset_dir": str(data), "template": "qwen2_vl", "cutoff_len": 128,
           "output_dir": str(root / "run"), "overwrite_output_dir": True, "per_device_train_batch_size": 4,
           "learning_rate": 5e-3, "max_steps": 80, "logging_steps": 40, "save_strategy": "no", "report_to": "none",
           "seed": 0, "disable_tqdm": True, **keys}
    run_training(build_config({k: (v, "test") for k, v in raw.items()}))
    return root / "run"


def engine_for(path, **keys):
    values = {"model_name_or_path": (str(path), "test"), "do_sample": (False, "test"), "max_new_tokens": (6, "test"),
              **{k: (v, "test") for k, v in keys.items()}}
    return create_engine(build_config(values, purpose="infer"))


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    paths = colour_images(tmp_path_factory.mktemp("images"))
    paths["wide"] = paths["red"].with_name("wide.png")
    Image.linear_gradient("L").resize((112, 56)).convert("RGB").save(paths["wide"])  # 2x the red one's tokens
    return paths


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory, qwen2_vl_model) -> Path:
    return train_colours(tmp_path_factory.mktemp("colours"), qwen2_vl_model)


def sharpened(model_dir: Path, out: Path) -> Path:
    """A copy of a tiny VL model with every weight matrix scaled by 8: a freshly initialised tiny model is nearly
    uniform and greedily repeats one token whatever it is shown; this one's replies depend on the image and on
    the positions of every token."""
    from transformers import AutoModelForImageTextToText

    shutil.copytree(model_dir, out)
    model = AutoModelForImageTextToText.from_pretrained(str(model_dir), dtype=torch.float32)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                param.mul_(8)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def sharp_models(tmp_path_factory, qwen2_vl_model, qwen2_5_vl_model, qwen3_vl_model) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sharp")
    return {"qwen2_vl": sharpened(qwen2_vl_model, root / "qwen2_vl"),
            "qwen2_5_vl": sharpened(qwen2_5_vl_model, root / "qwen2_5_vl"),
            "qwen3_vl": sharpened(qwen3_vl_model, root / "qwen3_vl")}


def reference_generate(engine, model_dir: Path, image: Path, max_new_tokens: int):
    """transformers' generate on inputs built as transformers' Qwen-VL processor builds them: the prompt with one
    image pad, expanded to grid_t*grid_h*grid_w/merge**2 pads, the PIL image processor's pixel values, 1 in
    mm_token_type_ids at the pads; embedding rows without a token are never generated (the engine's rule).
    Returns the model, those inputs, the generated ids (up to and with the first stop token) and the scores of
    each step."""
    from transformers import AutoImageProcessor, AutoModelForImageTextToText

    processor = AutoImageProcessor.from_pretrained(str(model_dir), backend="pil")
    features = processor([Image.open(image).convert("RGB")], return_tensors="pt")
    pads = int(features["image_grid_thw"].prod()) // processor.merge_size ** 2
    conv = Conversation((Message("user", f"<|vision_start|><|image_pad|><|vision_end|>{QUESTION}"),))
    text = engine.template.generation_prompt(conv, "", "", engine.default_system)
    text = text.replace("<|image_pad|>", "<|image_pad|>" * pads)
    ids = torch.tensor([engine.tokenizer.encode(text, add_special_tokens=False)])
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "pixel_values": features["pixel_values"],
              "image_grid_thw": features["image_grid_thw"],
              "mm_token_type_ids": (ids == engine.tokenizer.convert_tokens_to_ids("<|image_pad|>")).long()}
    model = AutoModelForImageTextToText.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        out = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=engine.stop_ids,
                             pad_token_id=engine.pad_id, suppress_tokens=engine.suppress, output_scores=True,
                             return_dict_in_generate=True)
    generated = out.sequences[0, ids.shape[1]:].tolist()
    ends = [i for i, token in enumerate(generated) if token in engine.stop_ids]
    generated = generated[:ends[0] + 1] if ends else generated
    return model, inputs, generated, torch.cat(out.scores[:len(generated)])


@pytest.mark.parametrize("family,template", [("qwen2_vl", "qwen2_vl"), ("qwen2_5_vl", "qwen2_vl"),
                                             ("qwen3_vl", "qwen3_vl_nothink")])
def test_greedy_generation_equals_transformers_generate(family, template, images, sharp_models):
    model_dir = sharp_models[family]
    engine = engine_for(model_dir, template=template, max_new_tokens=12)
    assert engine.vision is not None and engine.vision.model_type == family
    model, inputs, expected, scores = reference_generate(engine, model_dir, images["wide"], 12)
    pads = int(inputs["mm_token_type_ids"].sum())
    assert pads == 8  # 112x56 pixels: 4x8 patches (of 14 pixels for Qwen2-VL, 16 for Qwen3-VL), merged 2x2
    ask = [{"role": "user", "content": QUESTION, "images": [str(images["wide"])]}]
    prompt = engine.prompt_ids(ask)
    assert list(prompt) == inputs["input_ids"][0].tolist() and prompt.media.token_types == \
        inputs["mm_token_type_ids"][0].tolist()
    reply = engine.chat(ask)
    stopped = expected[-1] in engine.stop_ids
    assert reply.text == engine.tokenizer.decode(expected[:-1] if stopped else expected, skip_special_tokens=True)
    assert (reply.completion_tokens, reply.finish_reason) == (len(expected), "stop" if stopped else "length")
    assert len(set(expected)) > 3  # a reply of several different tokens, not one repeated
    other = engine.chat([{"role": "user", "content": QUESTION, "images": [str(images["blue"])]}])
    assert other.text != reply.text  # the image decides the reply

    # the generated tokens sat at the right positions: one forward pass over prompt + reply, the reply's tokens
    # typed as text (transformers recomputes every 3-D position from the token types), gives the step scores
    whole = torch.tensor([inputs["input_ids"][0].tolist() + expected[:-1]])
    types = torch.cat([inputs["mm_token_type_ids"], torch.zeros((1, len(expected) - 1), dtype=torch.long)], dim=1)
    with torch.no_grad():
        logits = model(input_ids=whole, attention_mask=torch.ones_like(whole), mm_token_type_ids=types,
                       pixel_values=inputs["pixel_values"], image_grid_thw=inputs["image_grid_thw"]).logits
    start = inputs["input_ids"].shape[1] - 1
    shown = torch.isfinite(scores)  # suppressed rows score -inf
    torch.testing.assert_close(logits[0, start:start + len(expected)][shown], scores[shown], rtol=1e-4, atol=1e-4)


def test_placeholders_mark_where_images_go(qwen2_vl_model, images):
    engine = engine_for(qwen2_vl_model, template="qwen2_vl")
    red, wide = str(images["red"]), str(images["wide"])
    front = engine.prompt_ids([{"role": "user", "content": QUESTION, "images": [red]}])
    marked = engine.prompt_ids([{"role": "user", "content": f"<image>{QUESTION}", "images": [red]}])
    assert list(front) == list(marked)
    both = engine.prompt_ids([{"role": "user", "content": "First <image>, then <image>?", "images": [red, wide]}])
    text = engine.tokenizer.decode(both)
    assert text.count("<|image_pad|>") == 4 + 8 and "First <|vision_start|>" in text
    assert both.media.features["image_grid_thw"].tolist() == [[1, 4, 4], [1, 4, 8]]
    with pytest.raises(InvalidRequest, match=r"holds 2 `<image>` placeholder\(s\) but 1 image"):
        engine.prompt_ids([{"role": "user", "content": "<image> and <image>", "images": [red]}])
    with pytest.raises(InvalidRequest, match=r"1 `<image>` placeholder\(s\) in the messages but 0 images"):
        engine.prompt_ids([{"role": "user", "content": "<image> what is it?"}])
    with pytest.raises(InvalidRequest, match="only user messages carry images"):
        engine.prompt_ids([{"role": "system", "content": "x", "images": [red]}, {"role": "user", "content": "y"}])
    with pytest.raises(InvalidRequest, match=r"vision token <\|image_pad\|> .* as text"):
        engine.prompt_ids([{"role": "user", "content": "<|image_pad|>", "images": [red]}])


def test_image_requests_batch_exactly(sharp_models, images, monkeypatch):
    monkeypatch.setattr(hf_engine, "GATHER_SECONDS", 0.5)  # requests started together share a round
    batched = engine_for(sharp_models["qwen2_vl"], template="qwen2_vl", max_new_tokens=8)
    single = engine_for(sharp_models["qwen2_vl"], template="qwen2_vl", max_new_tokens=8, infer_max_batch=1)
    asks = [[{"role": "user", "content": QUESTION, "images": [str(images["red"])]}],
            [{"role": "user", "content": "Describe <image> briefly.", "images": [str(images["wide"])]}],
            [{"role": "user", "content": "Hello there"}],
            [{"role": "user", "content": "Both?", "images": [str(images["blue"]), str(images["red"])]}]]
    alone = [single.chat(ask) for ask in asks]
    with ThreadPoolExecutor(len(asks)) as pool:
        together = list(pool.map(batched.chat, asks))
    assert max(batched.batch_sizes) > 1, "the requests were not batched"
    assert len({reply.text for reply in alone}) == len(asks)  # every request has its own reply
    for reply, solo in zip(together, alone):
        assert (reply.text, reply.finish_reason, reply.completion_tokens, reply.prompt_tokens) == (
            solo.text, solo.finish_reason, solo.completion_tokens, solo.prompt_tokens)


def test_trained_model_answers_from_the_image(colour_run, images):
    engine = engine_for(colour_run)  # a full fine-tune keeps its base's processor settings in the run dir
    assert engine.vision.folder == str(colour_run)
    for name in COLOURS:
        reply = engine.chat([{"role": "user", "content": QUESTION, "images": [str(images[name])]}])
        assert (reply.text, reply.finish_reason) == (name, "stop")


class Recorder:
    """An engine that records the messages each reply was asked for."""

    def __init__(self, engine):
        self.engine, self.vision, self.calls = engine, engine.vision, []

    def image_refusal(self) -> str:
        return self.engine.image_refusal()

    def stream(self, messages, **overrides):
        self.calls.append(messages)
        return self.engine.stream(messages, **overrides)


def test_chat_loop_attaches_images_with_the_image_command(colour_run, images):
    recorder = Recorder(engine_for(colour_run))
    out = io.StringIO()
    lines = f"/image {images['blue']}\n{QUESTION}\n/image '{images['red']}'\nAnd this one?\nexit\n"
    assert chat_loop(recorder, inp=io.StringIO(lines), out=out) == 0
    first, second = recorder.calls
    assert first == [{"role": "user", "content": QUESTION, "images": [str(images["blue"])]}]
    assert second[0] == first[0] and second[1] == {"role": "assistant", "content": "blue"}
    assert second[2] == {"role": "user", "content": "And this one?", "images": [str(images["red"])]}
    text = out.getvalue()
    assert "`/image PATH` attaches an image" in text and "Assistant: blue\n" in text
    assert f"[image {images['blue']} attached to your next message (1 waiting)]" in text


def test_chat_command_with_image_option(colour_run, images, capsys):
    assert main(["chat", str(colour_run), "do_sample=false", "--query", QUESTION, "--image", str(images["red"])]) == 0
    assert capsys.readouterr().out.strip() == "red"
    assert "--image PATH" in main_help(capsys)


def main_help(capsys) -> str:
    main(["chat", "--help"])
    return capsys.readouterr().out


def test_chat_refusals_keep_the_session(colour_run, lora_run, images, tmp_path):
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")
    lines = (f"/image {tmp_path / 'missing.png'}\n/image {not_image}\n/image\n<image> and <image>?\n"
             f"/image {images['red']}\n<image><image> two?\nclear\n{QUESTION}\nexit\n")
    out = io.StringIO()
    assert chat_loop(engine_for(colour_run), inp=io.StringIO(lines), out=out) == 0
    text = out.getvalue()
    assert f"missing.png: file not found" in text
    assert "not an image format Pillow can read" in text
    assert "[usage: /image PATH attaches an image file to your next message]" in text
    assert "2 `<image>` placeholder(s) in the messages but 0 images" in text
    assert "holds 2 `<image>` placeholder(s) but 1 image(s)" in text
    assert text.count("Assistant: ") == 3 and "History has been removed." in text  # the two refused + the last

    out = io.StringIO()
    chat_loop(engine_for(lora_run), inp=io.StringIO(f"/image {images['red']}\nexit\n"), out=out)
    assert "this model reads text only" in out.getvalue() and "/image PATH` attaches" not in out.getvalue()
    with pytest.raises(ConfigError, match="this model reads text only"):
        chat_once(engine_for(lora_run), QUESTION, images=[str(images["red"])])
