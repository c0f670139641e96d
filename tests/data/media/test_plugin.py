"""VisionPlugin: placeholders expand to exactly the vision tokens the model inputs need (grid products /
merge_size**2), in order across texts; LLaMA-Factory's layouts (Qwen3-VL's timestamps); clear count errors."""

from __future__ import annotations

import re

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.data.media.files import MediaError
from tunesmith.data.media.plugin import get_plugin
from tunesmith.data.media.settings import MediaSettings
from tunesmith.model.processor import load_processor

FAMILIES = [("qwen2_vl_model", "qwen2_vl"), ("qwen2_5_vl_model", "qwen2_vl"), ("qwen3_vl_model", "qwen3_vl")]


@pytest.fixture(params=FAMILIES, ids=[f for f, _ in FAMILIES])
def plugin(request):
    model = request.getfixturevalue(request.param[0])
    return get_plugin(request.param[1], load_processor(model))


def _counts(plugin, text):
    p = plugin.processor
    return text.count(p.image_token), text.count(p.video_token)


def test_expand_and_features_agree(plugin, media_dir):
    images = ["img/square.png", "img/wide.jpg", "img/gray_small.png", "img/large.png", "img/palette.png"]
    videos = ["clip.mp4", "long.mp4", ["img/square.png"] * 3]
    texts = ["<image><image>Look.", "<video> and <image>", "then <video><image><image><video>"]
    expanded = plugin.expand(texts, images, videos, media_dir)
    features = plugin.features(images, videos, media_dir)
    merge = plugin.processor.image_processor.merge_size ** 2
    image_grids, video_grids = features["image_grid_thw"], features["video_grid_thw"]
    assert len(image_grids) == len(images) and len(video_grids) == len(videos)
    assert features["pixel_values"].shape[0] == int(image_grids.prod(dim=1).sum())
    assert features["pixel_values_videos"].shape[0] == int(video_grids.prod(dim=1).sum())
    image_tokens = sum(_counts(plugin, t)[0] for t in expanded)
    video_tokens = sum(_counts(plugin, t)[1] for t in expanded)
    assert image_tokens == int(image_grids.prod(dim=1).sum()) // merge
    assert video_tokens == int(video_grids.prod(dim=1).sum()) // merge
    # in order: the first text holds exactly the first two images' tokens
    assert _counts(plugin, expanded[0])[0] == int(image_grids[:2].prod(dim=1).sum()) // merge
    assert "<image>" not in "".join(expanded) and "<video>" not in "".join(expanded)
    # the grids expand computes without pixels are the grids of the features
    assert [list(plugin.image_grid(i, media_dir)) for i in images] == image_grids.tolist()


def test_vision_tokens_and_types(plugin):
    p = plugin.processor
    ids = [p.tokenizer.convert_tokens_to_ids(t) for t in (p.vision_start, p.image_token, p.video_token, p.vision_end)]
    assert plugin.vision_token_ids == frozenset(ids)
    assert plugin.token_types([5, ids[0], ids[1], ids[2], ids[3], 7]) == [0, 0, 1, 2, 0, 0]


def test_qwen2_layout_and_second_per_grid(qwen2_5_vl_model, media_dir):
    plugin = get_plugin("qwen2_vl", load_processor(qwen2_5_vl_model))
    [text] = plugin.expand(["A <image> B"], ["img/square.png"], [], media_dir)
    # 64x64 -> smart_resize to 56x56 (factor 28) -> 4x4 patches -> 4 tokens
    assert text == "A <|vision_start|>" + "<|image_pad|>" * 4 + "<|vision_end|> B"
    features = plugin.features([], ["clip.mp4"], media_dir)
    # 4 frames sampled over 2.0 s: 2 frames per second, 2 frames per temporal patch -> 1 second per patch
    assert features["second_per_grid_ts"].tolist() == [1.0]
    assert "pixel_values" not in features


def test_qwen3_video_timestamps(qwen3_vl_model, media_dir):
    plugin = get_plugin("qwen3_vl", load_processor(qwen3_vl_model))
    [text] = plugin.expand(["<video>"], [], ["clip.mp4"], media_dir)
    # frames 0, 6, 12, 19 of a 10 fps clip: patches (0.0 + 0.6) / 2 and (1.2 + 1.9) / 2 seconds; the second is
    # 1.5499999999999998 in floating point (as in LLaMA-Factory and transformers), printed 1.5
    assert re.findall(r"<([0-9.]+) seconds>", text) == ["0.3", "1.5"]
    block = "<|vision_start|>" + "<|video_pad|>" * 4 + "<|vision_end|>"  # 64x48 -> 64x64 (factor 32) -> 2x2 merged
    assert text == f"<0.3 seconds>{block}<1.5 seconds>{block}"
    assert "second_per_grid_ts" not in plugin.features([], ["clip.mp4"], media_dir)


def test_settings_change_sizes(qwen2_vl_model, media_dir):
    processor = load_processor(qwen2_vl_model)
    big = get_plugin("qwen2_vl", processor, MediaSettings(image_min_pixels=128 * 128))
    # 64x64 below 128*128 pixels -> 128x128 -> smart_resize (factor 28) 140x140 -> 10x10 patches
    assert big.image_grid("img/square.png", media_dir) == (1, 10, 10)
    assert big.features(["img/square.png"], [], media_dir)["image_grid_thw"].tolist() == [[1, 10, 10]]
    small = get_plugin("qwen2_vl", processor, MediaSettings(video_maxlen=2))
    # 2 frames -> 1 temporal patch; 80x60 -> 84x56 (factor 28) -> 4x6 patches
    assert small.features([], ["long.mp4"], media_dir)["video_grid_thw"].tolist() == [[1, 4, 6]]


def test_count_mismatch_names_the_placeholder(plugin, media_dir):
    with pytest.raises(MediaError, match=r"2 `<image>` placeholder\(s\) in the messages but 1 images"):
        plugin.expand(["<image>", "<image>"], ["img/square.png"], [], media_dir)
    with pytest.raises(MediaError, match=r"0 `<video>` placeholder\(s\) in the messages but 1 videos"):
        plugin.expand(["no video"], [], ["clip.mp4"], media_dir)


def test_placeholders_follow_the_environment(plugin, media_dir, monkeypatch):
    monkeypatch.setenv("IMAGE_PLACEHOLDER", "[IMG]")
    assert plugin.image_placeholder == "[IMG]"
    [text] = plugin.expand(["x [IMG] <image>"], ["img/square.png"], [], media_dir)
    assert "<image>" in text and plugin.processor.image_token in text


def test_unknown_plugin_and_missing_processor(qwen2_vl_model):
    with pytest.raises(ConfigError, match="mm_plugin `llava` is not supported.*qwen2_vl, qwen3_vl"):
        get_plugin("llava", load_processor(qwen2_vl_model))
    with pytest.raises(ConfigError, match="needs the processor"):
        get_plugin("qwen2_vl", None)
