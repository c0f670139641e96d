"""Qwen-VL video processing without torchvision: the steps of transformers' Qwen2VLVideoProcessor (Qwen2-VL,
Qwen2.5-VL) and Qwen3VLVideoProcessor, written on torch alone.

transformers' video processors import torchvision, whose wheels do not import next to tunesmith's CPU torch.
Their arithmetic is small and public: frames (uint8, channels first) are resized to the size `smart_resize`
picks (Qwen3-VL counts the frames in the pixel budget) with torch's antialiased interpolation (what
torchvision's resize calls on the CPU for uint8 frames), rescaled and normalised in float32 with the mean and
std scaled by 1/rescale_factor, padded to a multiple of temporal_patch_size by repeating the last frame, and cut
into patches in the order the vision tower reads them. tests/data/media/test_video_golden.py compares the
result with transformers' own processors on golden files (scripts/make_vision_golden.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["QwenVideoProcessor", "smart_resize_2d", "smart_resize_3d"]

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_STANDARD = (0.5, 0.5, 0.5)

# transformers' class defaults, per family (video_processing_qwen2_vl.py, video_processing_qwen3_vl.py)
_DEFAULTS = {
    "qwen2_vl": dict(patch_size=14, temporal_patch_size=2, merge_size=2, min_pixels=128 * 28 * 28,
                     max_pixels=28 * 28 * 768, image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD,
                     max_video_tokens=128000),
    "qwen3_vl": dict(patch_size=16, temporal_patch_size=2, merge_size=2, min_pixels=128 * 32 * 32,
                     max_pixels=32 * 32 * 768, image_mean=IMAGENET_STANDARD, image_std=IMAGENET_STANDARD,
                     max_video_tokens=768),
}
_MODES = {0: "nearest", 2: "bilinear", 3: "bicubic"}  # PIL resample codes -> torch interpolation modes


def _check_ratio(height: float, width: float) -> None:
    if max(height, width) / min(height, width) > 200:
        raise ConfigError(f"a video frame of {width}x{height} has an aspect ratio above 200, which Qwen-VL refuses")


def smart_resize_2d(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen2-VL's size rule: both sides multiples of `factor`, pixels within [min_pixels, max_pixels], the
    aspect ratio kept as closely as possible."""
    _check_ratio(height, width)
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar, w_bar = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def smart_resize_3d(num_frames: int, height: int, width: int, temporal_factor: int, factor: int, min_pixels: int,
                    max_pixels: int) -> tuple[int, int]:
    """Qwen3-VL's size rule: as Qwen2-VL's, with the frames counted in the pixel budget and sides below `factor`
    scaled up first."""
    if num_frames < temporal_factor:
        raise ConfigError(f"a Qwen3-VL video needs at least {temporal_factor} frames, got {num_frames}")
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height, width = int(height * scale), int(width * scale)
    _check_ratio(height, width)
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    t_bar = round(num_frames / temporal_factor) * temporal_factor
    if t_bar * h_bar * w_bar > max_pixels:
        beta = math.sqrt(num_frames * height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif t_bar * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (num_frames * height * width))
        h_bar, w_bar = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


@dataclass(frozen=True)
class QwenVideoProcessor:
    """One checkpoint's video settings and the processing they define (frames in, patches and grids out)."""

    family: str  # "qwen2_vl" (Qwen2-VL, Qwen2.5-VL) or "qwen3_vl"
    patch_size: int
    temporal_patch_size: int
    merge_size: int
    min_pixels: int
    max_pixels: int
    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]
    rescale_factor: float = 1 / 255
    do_resize: bool = True
    do_rescale: bool = True
    do_normalize: bool = True
    resample: int = 3
    cap_pixels_per_frame: bool = False
    max_video_tokens: int = 128000

    @classmethod
    def from_dict(cls, family: str, config: dict[str, Any]) -> QwenVideoProcessor:
        """From a checkpoint's video_preprocessor_config.json (or preprocessor_config.json, which transformers
        falls back to), with transformers' class defaults for absent keys."""
        if family not in _DEFAULTS:
            raise ConfigError(f"no Qwen video processing for family {family!r}; known: {sorted(_DEFAULTS)}")
        values = dict(_DEFAULTS[family])
        size = config.get("size") or {}
        values["min_pixels"] = size.get("shortest_edge", values["min_pixels"])
        values["max_pixels"] = size.get("longest_edge", values["max_pixels"])
        if family == "qwen2_vl":  # Qwen2VLVideoProcessor.__init__ lets legacy min/max_pixels override size
            values["min_pixels"] = config.get("min_pixels") or values["min_pixels"]
            values["max_pixels"] = config.get("max_pixels") or values["max_pixels"]
        for key in ("patch_size", "temporal_patch_size", "merge_size", "rescale_factor", "do_resize", "do_rescale",
                    "do_normalize", "resample", "max_video_tokens"):
            if config.get(key) is not None:
                values[key] = config[key]
        values["image_mean"] = tuple(config.get("image_mean") or values["image_mean"])
        values["image_std"] = tuple(config.get("image_std") or values["image_std"])
        values["cap_pixels_per_frame"] = bool(config.get("cap_pixels_per_frame"))
        if values.get("resample", 3) not in _MODES:
            raise ConfigError(f"video resample mode {values['resample']} is not supported (PIL codes "
                              f"{sorted(_MODES)}: nearest, bilinear, bicubic)")
        return cls(family=family, **values)

    def to_dict(self) -> dict[str, Any]:
        """The keys of transformers' video_preprocessor_config.json for these settings."""
        kind = "Qwen3VLVideoProcessor" if self.family == "qwen3_vl" else "Qwen2VLVideoProcessor"
        return {"video_processor_type": kind, "size": {"shortest_edge": self.min_pixels,
                                                       "longest_edge": self.max_pixels},
                "patch_size": self.patch_size, "temporal_patch_size": self.temporal_patch_size,
                "merge_size": self.merge_size, "image_mean": list(self.image_mean), "image_std": list(self.image_std),
                "rescale_factor": self.rescale_factor, "do_resize": self.do_resize, "do_rescale": self.do_rescale,
                "do_normalize": self.do_normalize, "resample": self.resample, "do_convert_rgb": True,
                "do_sample_frames": False, "cap_pixels_per_frame": self.cap_pixels_per_frame,
                "max_video_tokens": self.max_video_tokens}

    def resized_size(self, num_frames: int, height: int, width: int) -> tuple[int, int]:
        """(height, width) the frames are resized to (the frames as given, before temporal padding)."""
        if not self.do_resize:
            return height, width
        factor = self.patch_size * self.merge_size
        max_pixels = self.max_pixels
        if self.family == "qwen3_vl":
            if self.cap_pixels_per_frame:
                per_frame = max(min(self.max_video_tokens * factor * factor, self.max_pixels // num_frames),
                                int(self.min_pixels * 1.05))
                max_pixels = per_frame * num_frames
            return smart_resize_3d(num_frames, height, width, self.temporal_patch_size, factor, self.min_pixels,
                                   max_pixels)
        if self.cap_pixels_per_frame:
            total = int(self.max_video_tokens * factor * factor * 0.9)
            max_pixels = max(min(max_pixels, total * self.temporal_patch_size // num_frames),
                             int(self.min_pixels * 1.05))
        return smart_resize_2d(height, width, factor, self.min_pixels, max_pixels)

    def grid(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        """(t, h, w) patch grid of a video of `num_frames` frames of height x width, without its pixels."""
        resized_h, resized_w = self.resized_size(num_frames, height, width)
        return (math.ceil(num_frames / self.temporal_patch_size), resized_h // self.patch_size,
                resized_w // self.patch_size)

    def _normalise(self, frames: torch.Tensor) -> torch.Tensor:
        import torch

        if self.do_normalize:
            mean, std = torch.tensor(self.image_mean), torch.tensor(self.image_std)
            if self.do_rescale:  # transformers fuses the rescale into mean and std
                mean, std = mean * (1.0 / self.rescale_factor), std * (1.0 / self.rescale_factor)
            return frames.to(torch.float32).sub_(mean.view(-1, 1, 1)).div_(std.view(-1, 1, 1))
        if self.do_rescale:
            return frames * self.rescale_factor
        return frames

    def _patchify(self, frames: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        import torch

        if pad := -frames.shape[0] % self.temporal_patch_size:
            frames = torch.cat((frames, frames[-1:].expand(pad, -1, -1, -1)), dim=0)
        count, channels, height, width = frames.shape
        t, p, m = self.temporal_patch_size, self.patch_size, self.merge_size
        grid = (count // t, height // p, width // p)
        patches = frames.reshape(grid[0], t, channels, grid[1] // m, m, p, grid[2] // m, m, p)
        patches = patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
        return patches.reshape(grid[0] * grid[1] * grid[2], channels * t * p * p), grid

    def process(self, frames: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """One video: uint8 frames (T, 3, H, W) -> (patches (t*h*w, 3*temporal*patch*patch) float32, (t, h, w))."""
        import torch

        count, _, height, width = frames.shape
        new_h, new_w = self.resized_size(count, height, width)
        if (new_h, new_w) != (height, width):
            mode = _MODES[self.resample]
            frames = torch.nn.functional.interpolate(
                frames.contiguous(), size=[new_h, new_w], mode=mode, antialias=mode != "nearest",
                align_corners=None if mode == "nearest" else False)
        return self._patchify(self._normalise(frames))

    def __call__(self, videos: list) -> dict[str, torch.Tensor]:
        """Videos (each a sequence of same-sized RGB PIL frames, or a uint8 (T, H, W, 3) array) -> the model's
        `pixel_values_videos` and `video_grid_thw`."""
        import numpy as np
        import torch

        patches, grids = [], []
        for video in videos:
            array = np.stack([np.asarray(frame.convert("RGB") if hasattr(frame, "convert") else frame)
                              for frame in video]) if not isinstance(video, np.ndarray) else video
            flat, grid = self.process(torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2))
            patches.append(flat)
            grids.append(grid)
        return {"pixel_values_videos": torch.cat(patches, dim=0), "video_grid_thw": torch.tensor(grids)}
