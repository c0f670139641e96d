"""Tiny VL models: deterministic files, a forward pass with pixel values, and a plain transformers reload."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from tunesmith.model.tiny_vl import build_tiny_vl_model


def test_same_arguments_give_identical_files(tmp_path):
    a = build_tiny_vl_model("qwen2_vl", tmp_path / "a", seed=3)
    b = build_tiny_vl_model("qwen2_vl", tmp_path / "b", seed=3)
    c = build_tiny_vl_model("qwen2_vl", tmp_path / "c", seed=4)
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()
    for name in ("preprocessor_config.json", "video_preprocessor_config.json", "chat_template.jinja"):
        assert (a / name).is_file()


@pytest.mark.parametrize("fixture", ["qwen2_vl_model", "qwen2_5_vl_model", "qwen3_vl_model"])
def test_forward_with_pixels_and_plain_reload(fixture, request, tmp_path):
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    from tunesmith.data.media.plugin import get_plugin
    from tunesmith.model.processor import load_processor

    path = request.getfixturevalue(fixture)
    model = AutoModelForImageTextToText.from_pretrained(path)
    assert sum(p.numel() for p in model.parameters()) < 400_000
    config = json.loads((path / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert config["image_token_id"] == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert config["video_token_id"] == tokenizer.convert_tokens_to_ids("<|video_pad|>")

    processor = load_processor(path)
    plugin = get_plugin("qwen3_vl" if "qwen3" in fixture else "qwen2_vl", processor)
    image = Image.new("RGB", (64, 64), (200, 40, 40))
    [text] = plugin.expand(["<|im_start|>user\n<image>colour?<|im_end|>\n<|im_start|>assistant\nred<|im_end|>"],
                           [image], [], None)
    assert text.count("<|image_pad|>") == 4  # a 64x64 image is 4 tokens
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    features = plugin.features([image], [], None)
    types = torch.tensor([plugin.token_types(ids[0].tolist())])
    out = model(input_ids=ids, mm_token_type_ids=types, labels=ids, **features)
    assert torch.isfinite(out.loss) and out.logits.shape[:2] == ids.shape
    # the image changes the text's logits: the vision tower is wired in
    other = plugin.features([Image.new("RGB", (64, 64), (20, 40, 240))], [], None)
    logits = model(input_ids=ids, mm_token_type_ids=types, **other).logits
    assert not torch.allclose(out.logits, logits)

    model.save_pretrained(tmp_path / "again")
    again = AutoModelForImageTextToText.from_pretrained(tmp_path / "again")
    assert torch.equal(again(input_ids=ids, mm_token_type_ids=types, **features).logits, model(
        input_ids=ids, mm_token_type_ids=types, **features).logits)
    assert "torchvision" not in sys.modules


def test_unknown_family(tmp_path):
    with pytest.raises(ValueError, match="qwen2_5_vl"):
        build_tiny_vl_model("llava", tmp_path)


def test_cli_builds_a_vl_model(tmp_path, capsys):
    from tunesmith.cli import main

    assert main(["tiny-model", str(tmp_path / "vl"), "--family", "qwen3_vl", "--hidden-size", "32"]) == 0
    assert "qwen3_vl vision-language model" in capsys.readouterr().out
    config = json.loads((tmp_path / "vl" / "config.json").read_text())
    assert config["model_type"] == "qwen3_vl" and config["text_config"]["hidden_size"] == 32
    with pytest.raises(ValueError, match="multiple of 32"):
        build_tiny_vl_model("qwen2_vl", tmp_path / "odd", hidden_size=48)
