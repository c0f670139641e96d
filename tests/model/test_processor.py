"""load_processor: tokenizer + transformers' PIL image processor + our video processing, without torchvision."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.model.processor import load_processor
from tunesmith.model.qwen_video import QwenVideoProcessor


def test_text_model_has_no_processor(qwen2_model):
    assert load_processor(qwen2_model) is None


@pytest.mark.parametrize("fixture, family, patch", [("qwen2_vl_model", "qwen2_vl", 14),
                                                     ("qwen2_5_vl_model", "qwen2_vl", 14),
                                                     ("qwen3_vl_model", "qwen3_vl", 16)])
def test_vl_processor_parts(fixture, family, patch, request):
    path = request.getfixturevalue(fixture)
    processor = load_processor(path)
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    assert processor.image_processor.patch_size == patch
    assert processor.video_processor.family == family and processor.video_processor.patch_size == patch
    assert processor.returns_second_per_grid_ts == (fixture == "qwen2_5_vl_model")
    # the grid computed from the size alone is the grid of transformers' image processor
    from PIL import Image

    for size in [(64, 64), (100, 37), (30, 300)]:
        done = processor.image_processor([Image.new("RGB", size)])
        assert tuple(done["image_grid_thw"][0]) == processor.image_grid(size[1], size[0])


def test_loading_never_imports_torchvision(qwen3_vl_model):
    code = ("import sys; from tunesmith.model.processor import load_processor; "
            f"p = load_processor({str(qwen3_vl_model)!r}); "
            "from tunesmith.data.media.plugin import get_plugin; get_plugin('qwen3_vl', p); "
            "assert 'torchvision' not in sys.modules, 'torchvision imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_video_config_fallback_and_legacy_keys():
    legacy = QwenVideoProcessor.from_dict("qwen2_vl", {"min_pixels": 3136, "max_pixels": 12845056})
    assert (legacy.min_pixels, legacy.max_pixels, legacy.patch_size) == (3136, 12845056, 14)
    qwen3 = QwenVideoProcessor.from_dict("qwen3_vl", {})
    assert (qwen3.min_pixels, qwen3.max_pixels, qwen3.image_mean) == (128 * 32 * 32, 32 * 32 * 768, (0.5,) * 3)
    with pytest.raises(ConfigError, match="resample mode 1"):
        QwenVideoProcessor.from_dict("qwen2_vl", {"resample": 1})


def test_unsupported_vision_model_and_missing_files(tmp_path, qwen2_vl_model):
    other = tmp_path / "llava"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "llava"}))
    (other / "preprocessor_config.json").write_text("{}")
    with pytest.raises(ConfigError, match="model_type `llava` is not supported"):
        load_processor(other)
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text((qwen2_vl_model / "config.json").read_text())
    with pytest.raises(ConfigError, match="without preprocessor_config.json"):
        load_processor(bare)
