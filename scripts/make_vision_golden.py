"""Write tests/golden/vision/*.npz + summary.json: transformers' own Qwen-VL image and video processors on small
deterministic synthetic inputs, for tests/data/media/test_vision_golden.py to compare tunesmith's torchvision-free
path against.

Run it where torchvision imports (tunesmith's own environment cannot import it), e.g. a separate venv outside
the repository:

    python3 -m venv /work/vlgold
    /work/vlgold/bin/pip install torch==2.14.1 torchvision==0.29.1 transformers==5.23.0 pillow==12.3.0 numpy av
    /work/vlgold/bin/python scripts/make_vision_golden.py

Pillow must be the version tunesmith runs with (12.3.0 here): Pillow 13.0 resamples bicubic differently (up to 16
levels on these noisy inputs). It imports nothing from tunesmith. Inputs are stored beside the outputs, so the test feeds the same pixels.
Videos are given as lists of PIL frames and processed with the arguments LLaMA-Factory's Qwen2VLPlugin /
Qwen3VLPlugin pass (Qwen3-VL: video_metadata, fps, do_sample_frames=False)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import PIL
import torch
import torchvision
import transformers
from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor
from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

OUT = Path(__file__).resolve().parents[1] / "tests" / "golden" / "vision"
CLIP = dict(image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711])
HALF = dict(image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])

# (name, class, config, frame sizes (frames, height, width) of the videos processed together in one call)
VIDEO_CASES = [
    ("qwen2_tiny", Qwen2VLVideoProcessor,
     dict(CLIP, patch_size=14, temporal_patch_size=2, merge_size=2, size={"shortest_edge": 1024,
                                                                             "longest_edge": 128 * 128}),
     [(4, 48, 64), (3, 30, 90)]),
    ("qwen2_upscale", Qwen2VLVideoProcessor,  # frames below min_pixels grow; legacy min/max_pixels keys
     dict(CLIP, patch_size=14, temporal_patch_size=2, merge_size=2, min_pixels=56 * 56, max_pixels=56 * 84),
     [(2, 20, 26)]),
    ("qwen2_capped", Qwen2VLVideoProcessor,
     dict(CLIP, patch_size=14, temporal_patch_size=2, merge_size=2, cap_pixels_per_frame=True, max_video_tokens=8,
          size={"shortest_edge": 256, "longest_edge": 128 * 128}),
     [(4, 60, 80)]),
    ("qwen3_tiny", Qwen3VLVideoProcessor,
     dict(HALF, patch_size=16, temporal_patch_size=2, merge_size=2, size={"shortest_edge": 2048,
                                                                             "longest_edge": 128 * 128 * 16}),
     [(4, 48, 64), (6, 70, 40)]),
    ("qwen3_budget", Qwen3VLVideoProcessor,  # frames counted in the budget: 6 frames shrink each frame
     dict(HALF, patch_size=16, temporal_patch_size=2, merge_size=2, size={"shortest_edge": 1024,
                                                                             "longest_edge": 6 * 32 * 64}),
     [(6, 64, 96)]),
    ("qwen3_capped", Qwen3VLVideoProcessor,
     dict(HALF, patch_size=16, temporal_patch_size=2, merge_size=2, cap_pixels_per_frame=True, max_video_tokens=2,
          size={"shortest_edge": 1024, "longest_edge": 128 * 128 * 16}),
     [(2, 64, 64)]),
]

IMAGE_CONFIGS = {
    "qwen2_tiny": dict(CLIP, patch_size=14, temporal_patch_size=2, merge_size=2,
                       size={"shortest_edge": 32 * 32, "longest_edge": 256 * 256}),
    "qwen3_tiny": dict(HALF, patch_size=16, temporal_patch_size=2, merge_size=2,
                       size={"shortest_edge": 32 * 32, "longest_edge": 256 * 256}),
}
IMAGE_SIZES = [(64, 64), (37, 100), (90, 30)]  # (height, width)

# Qwen3VLProcessor._calculate_timestamps: (frame positions, video_fps, temporal patch size)
TIMESTAMP_CASES = [([0.0, 1.2, 2.4, 3.8], 2.0, 2), ([0.0, 1.0, 2.0], 2.0, 2), ([0.0, 0.4, 0.8, 1.2, 1.6], 1.0, 2)]


def synthetic(frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """Deterministic frames with gradients, edges and noise (so resampling filters differ visibly)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        base = np.stack([(x * 7 + t * 20) % 256, (y * 5) % 256, ((x // 6 + y // 6 + t) % 2) * 255], axis=-1)
        out[t] = np.clip(base + rng.integers(-25, 26, base.shape), 0, 255)
    return out


def video_case(name, processor_class, config, shapes) -> tuple[dict, dict]:
    processor = processor_class(**config)
    arrays = [synthetic(*shape, seed=i) for i, shape in enumerate(shapes)]
    videos = [[Image.fromarray(frame) for frame in array] for array in arrays]
    if processor_class is Qwen3VLVideoProcessor:
        metadata = [{"fps": 2.0, "duration": len(v) / 2.0, "total_num_frames": len(v),
                     "frames_indices": list(range(len(v)))} for v in videos]
        done = processor(videos=videos, video_metadata=metadata, fps=2.0, return_metadata=True,
                         do_sample_frames=False, return_tensors="pt")
    else:
        done = processor(videos=videos, return_tensors="pt")
    arrays_out = {f"input_{i}": a for i, a in enumerate(arrays)}
    arrays_out["pixel_values_videos"] = done["pixel_values_videos"].numpy()
    arrays_out["video_grid_thw"] = done["video_grid_thw"].numpy()
    family = "qwen3_vl" if processor_class is Qwen3VLVideoProcessor else "qwen2_vl"
    return arrays_out, {"family": family, "config": config, "videos": len(arrays)}


def image_case(name, config) -> tuple[dict, dict]:
    arrays = [synthetic(1, h, w, seed=10 + i)[0] for i, (h, w) in enumerate(IMAGE_SIZES)]
    images = [Image.fromarray(a) for a in arrays]
    pil = Qwen2VLImageProcessorPil(**config)(images, return_tensors="np")
    tv = Qwen2VLImageProcessor(**config)(images, return_tensors="pt")
    assert np.array_equal(pil["image_grid_thw"], tv["image_grid_thw"].numpy())
    diff = np.abs(pil["pixel_values"] - tv["pixel_values"].numpy())
    out = {f"input_{i}": a for i, a in enumerate(arrays)}
    out.update(pil_pixel_values=pil["pixel_values"].astype(np.float32), image_grid_thw=pil["image_grid_thw"],
               torchvision_pixel_values=tv["pixel_values"].numpy())
    stats = {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
             "share_within_0.02": float((diff <= 0.02).mean())}
    return out, {"config": config, "images": len(arrays), "torchvision_vs_pil": stats}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    summary = {"versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                            "transformers": transformers.__version__, "pillow": PIL.__version__},
               "video": {}, "image": {}, "timestamps": []}
    for name, processor_class, config, shapes in VIDEO_CASES:
        arrays, meta = video_case(name, processor_class, config, shapes)
        np.savez_compressed(OUT / f"video_{name}.npz", **arrays)
        summary["video"][name] = meta
    for name, config in IMAGE_CONFIGS.items():
        arrays, meta = image_case(name, config)
        np.savez_compressed(OUT / f"image_{name}.npz", **arrays)
        summary["image"][name] = meta
    for positions, fps, merge in TIMESTAMP_CASES:
        stamps = Qwen3VLProcessor._calculate_timestamps(None, list(positions), fps, merge)
        summary["timestamps"].append({"positions": positions, "video_fps": fps, "merge": merge,
                                      "timestamps": stamps})
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total / 1024:.0f} KiB, to {OUT}")
    for name, meta in summary["image"].items():
        print(name, "torchvision vs PIL:", meta["torchvision_vs_pil"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
