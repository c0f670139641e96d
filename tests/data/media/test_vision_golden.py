"""tunesmith's torchvision-free Qwen-VL processing against transformers' own processors, on golden files written
by scripts/make_vision_golden.py where torchvision imports (transformers 5.23, torchvision 0.29)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tunesmith.data.media.plugin import patch_timestamps
from tunesmith.model.qwen_video import QwenVideoProcessor

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "vision"
SUMMARY = json.loads((GOLDEN / "summary.json").read_text(encoding="utf-8"))
# One uint8 step after normalisation is 1 / (255 * std) <= 0.016 (CLIP std 0.26): frames resized by another
# torch build may round a few values one step apart, never more.
ONE_STEP = 1 / (255 * 0.26)


def _inputs(golden, count: int) -> list[np.ndarray]:
    return [golden[f"input_{i}"] for i in range(count)]


@pytest.mark.parametrize("name", sorted(SUMMARY["video"]))
def test_video_processing_equals_transformers(name):
    meta = SUMMARY["video"][name]
    golden = np.load(GOLDEN / f"video_{name}.npz")
    processor = QwenVideoProcessor.from_dict(meta["family"], meta["config"])
    from PIL import Image

    videos = [[Image.fromarray(frame) for frame in video] for video in _inputs(golden, meta["videos"])]
    ours = processor(videos)
    assert ours["video_grid_thw"].tolist() == golden["video_grid_thw"].tolist()
    expected = torch.from_numpy(golden["pixel_values_videos"])
    assert ours["pixel_values_videos"].shape == expected.shape and ours["pixel_values_videos"].dtype == torch.float32
    diff = (ours["pixel_values_videos"] - expected).abs()
    assert diff.max() <= ONE_STEP * 1.01
    assert (diff > 1e-5).float().mean() < 0.01  # all but a few values identical
    # the grid computed without pixels is the grid of the pixels
    for video, grid in zip(videos, golden["video_grid_thw"].tolist()):
        assert list(processor.grid(len(video), video[0].height, video[0].width)) == grid


@pytest.mark.parametrize("name", sorted(SUMMARY["image"]))
def test_pil_image_processor_matches_golden_and_torchvision_gap(name):
    from PIL import Image
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    meta = SUMMARY["image"][name]
    golden = np.load(GOLDEN / f"image_{name}.npz")
    images = [Image.fromarray(a) for a in _inputs(golden, meta["images"])]
    done = Qwen2VLImageProcessorPil(**meta["config"])(images)
    assert done["image_grid_thw"].tolist() == golden["image_grid_thw"].tolist()
    assert np.abs(done["pixel_values"] - golden["pil_pixel_values"]).max() <= ONE_STEP * 1.01
    # transformers' torchvision image processor resamples differently (recorded, not hidden): same grids, close
    # pixels
    gap = np.abs(done["pixel_values"] - golden["torchvision_pixel_values"])
    assert gap.mean() < 0.02 and gap.max() < 0.5


@pytest.mark.parametrize("case", SUMMARY["timestamps"], ids=lambda c: str(c["positions"]))
def test_qwen3_timestamps_equal_transformers(case):
    assert patch_timestamps(case["positions"], case["video_fps"], case["merge"]) == case["timestamps"]
