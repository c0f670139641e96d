"""The one contract for multimodal model families: `VisionPlugin`, chosen by the template's `mm_plugin` name
(`get_plugin`).

Route (issue 17): transformers 5.23's Qwen-VL torchvision image processor and its video processors import
torchvision, whose only wheels here are CUDA builds that do not import next to tunesmith's CPU torch. So:
- images go through transformers' own PIL-backend image processor (`Qwen2VLImageProcessorPil`, loaded with
  `AutoImageProcessor.from_pretrained(path, backend="pil")` in model/processor.py);
- videos go through model/qwen_video.py, our torch-only copy of the arithmetic of transformers'
  Qwen2VLVideoProcessor / Qwen3VLVideoProcessor, proven equal to theirs on golden files made where torchvision
  imports (scripts/make_vision_golden.py, tests/data/media/test_video_golden.py);
- media are read and regularised as LLaMA-Factory's mm_plugin does (files.py, regularize.py: image_max_pixels,
  image_min_pixels, video_max_pixels, video_min_pixels, video_fps, video_maxlen, Qwen's 28-pixel minimum side and
  aspect-ratio cap, an odd frame count padded with the last frame), and placeholders are expanded as its
  Qwen2VLPlugin / Qwen3VLPlugin expand them (Qwen3-VL: one `<t seconds>` block per temporal patch).
No torchvision is imported, patched or half-imported anywhere.

The processor a plugin receives is model/processor.py's `VisionProcessor` (read here by its attributes:
`tokenizer`, `image_processor`, `video_processor`, `image_grid(height, width)`, `image_token`, `video_token`,
`vision_start`, `vision_end`, `returns_second_per_grid_ts`); data/ does not import model/.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from ...config.errors import ConfigError
from ..formats.media import placeholders
from .files import MediaError, VideoInfo, decode_image, image_size, load_video, probe_video
from .regularize import regularize_image, regularized_size
from .settings import MediaSettings

__all__ = ["SUPPORTED_PLUGINS", "Qwen2VLPlugin", "Qwen3VLPlugin", "VisionPlugin", "get_plugin"]

TEXT, IMAGE, VIDEO = 0, 1, 2  # mm_token_type_ids values of transformers' Qwen-VL processors


class VisionPlugin:
    """Expands `<image>` / `<video>` placeholders into a model's vision tokens and builds the matching model
    inputs. `expand` and `features` agree by construction: both take the grids from the same sizes. The shared
    steps are those of Qwen-style families (patch grids merged merge_size x merge_size into one token); a family
    overrides the token layout (`image_tokens`, `video_tokens`)."""

    name: ClassVar[str]

    def __init__(self, processor: Any, settings: MediaSettings | None = None):
        self.processor = processor
        self.settings = settings or MediaSettings()
        tokenizer = processor.tokenizer
        self._ids = {token: tokenizer.convert_tokens_to_ids(token) for token in self.vision_tokens}
        unknown = [token for token, index in self._ids.items() if index is None or index == tokenizer.unk_token_id]
        if unknown:
            raise ConfigError(f"mm_plugin `{self.name}`: the tokenizer has no {', '.join(unknown)} token(s); is this "
                              "the tokenizer of a vision-language checkpoint?")

    # -- what the data uses and what never trains -------------------------------------------------------------
    @property
    def image_placeholder(self) -> str:
        return dict((kind, marker) for kind, marker, _ in placeholders())["image"]

    @property
    def video_placeholder(self) -> str:
        return dict((kind, marker) for kind, marker, _ in placeholders())["video"]

    @property
    def vision_tokens(self) -> tuple[str, ...]:
        p = self.processor
        return (p.vision_start, p.vision_end, p.image_token, p.video_token)

    @property
    def vision_token_ids(self) -> frozenset[int]:
        """Ids of the tokens a vision block is made of (pads, start, end): never trained."""
        return frozenset(self._ids.values())

    def token_types(self, input_ids: Sequence[int]) -> list[int]:
        """transformers' `mm_token_type_ids` for a sequence: 1 at image pads, 2 at video pads, 0 elsewhere."""
        image, video = self._ids[self.processor.image_token], self._ids[self.processor.video_token]
        return [IMAGE if i == image else VIDEO if i == video else TEXT for i in input_ids]

    # -- sizes -------------------------------------------------------------------------------------------------
    def image_grid(self, item: Any, base_dir: str | Path | None) -> tuple[int, int, int]:
        """(t, h, w) patch grid of an image from its header size."""
        width, height = image_size(item, base_dir)
        s = self.settings
        width, height = regularized_size(width, height, s.image_max_pixels, s.image_min_pixels, qwen=True)
        return self.processor.image_grid(height, width)

    def video_grid(self, info: VideoInfo) -> tuple[int, int, int]:
        """(t, h, w) patch grid of a video from its metadata."""
        s = self.settings
        width, height = regularized_size(info.width, info.height, s.video_max_pixels, s.video_min_pixels,
                                         qwen=True)
        frames = info.num_frames + info.num_frames % 2  # LLaMA-Factory pads an odd count with the last frame
        return self.processor.video_processor.grid(frames, height, width)

    # -- placeholders ------------------------------------------------------------------------------------------
    def image_tokens(self, grid: tuple[int, int, int]) -> str:
        count = grid[0] * grid[1] * grid[2] // self.processor.image_processor.merge_size ** 2
        p = self.processor
        return p.vision_start + p.image_token * count + p.vision_end

    def video_tokens(self, grid: tuple[int, int, int], info: VideoInfo) -> str:
        count = grid[0] * grid[1] * grid[2] // self.processor.image_processor.merge_size ** 2
        p = self.processor
        return p.vision_start + p.video_token * count + p.vision_end

    def expand(self, texts: list[str], images: list, videos: list, base_dir: str | Path | None = None) -> list[str]:
        """`texts` with each placeholder replaced, in order across the texts, by its media's vision tokens.
        A count of placeholders that differs from the media given is a MediaError."""
        image_mark, video_mark = self.image_placeholder, self.video_placeholder
        found = {mark: sum(text.count(mark) for text in texts) for mark in (image_mark, video_mark)}
        for mark, media, kind in ((image_mark, images, "images"), (video_mark, videos, "videos")):
            if found[mark] != len(media):
                raise MediaError(f"{found[mark]} `{mark}` placeholder(s) in the messages but {len(media)} {kind} "
                                 "in the row: each placeholder stands for one item, in order")
        image_blocks = iter([self.image_tokens(self.image_grid(item, base_dir)) for item in images])
        infos = [probe_video(item, base_dir, self.settings) for item in videos]
        video_blocks = iter([self.video_tokens(self.video_grid(info), info) for info in infos])
        out = []
        for text in texts:
            pieces = []
            for i, part in enumerate(text.split(video_mark)):
                pieces.append(next(video_blocks) if i else "")
                image_parts = part.split(image_mark)
                pieces.append(image_parts[0] + "".join(next(image_blocks) + rest for rest in image_parts[1:]))
            out.append("".join(pieces))
        return out

    # -- model inputs ------------------------------------------------------------------------------------------
    def features(self, images: list, videos: list, base_dir: str | Path | None = None) -> dict:
        """The model inputs for these media, in order: pixel_values and image_grid_thw (if any image),
        pixel_values_videos and video_grid_thw (+ second_per_grid_ts for Qwen2.5-VL) (if any video)."""
        import torch

        s, p, out = self.settings, self.processor, {}
        if images:
            regular = [regularize_image(decode_image(item, base_dir), s.image_max_pixels, s.image_min_pixels, True)
                       for item in images]
            done = p.image_processor(regular)  # numpy arrays
            out["pixel_values"] = torch.from_numpy(done["pixel_values"])
            out["image_grid_thw"] = torch.from_numpy(done["image_grid_thw"])
        if videos:
            loaded = [load_video(item, base_dir, s) for item in videos]
            clips = []
            for video in loaded:
                frames = list(video.frames) + list(video.frames[-1:]) * (len(video.frames) % 2)
                clips.append([regularize_image(f, s.video_max_pixels, s.video_min_pixels, True) for f in frames])
            out.update(p.video_processor(clips))
            if p.returns_second_per_grid_ts:
                temporal = p.video_processor.temporal_patch_size
                out["second_per_grid_ts"] = torch.tensor([temporal / v.info.sampled_fps for v in loaded])
        return out


def patch_timestamps(positions: Sequence[float], video_fps: float, merge: int) -> list[float]:
    """Seconds of each temporal patch, as transformers' Qwen3VLProcessor._calculate_timestamps computes them from
    LLaMA-Factory's frame positions (index / source fps * video_fps): the positions padded with the last to a
    multiple of `merge`, divided by video_fps, the mean of each patch's first and last frame."""
    positions = list(positions)
    positions += positions[-1:] * (-len(positions) % merge)
    seconds = [position / video_fps for position in positions]
    return [(seconds[i] + seconds[i + merge - 1]) / 2 for i in range(0, len(seconds), merge)]


class Qwen2VLPlugin(VisionPlugin):
    """Qwen2-VL and Qwen2.5-VL (LLaMA-Factory's Qwen2VLPlugin): one `<|vision_start|>pads<|vision_end|>` block
    per image or video, grid product / merge_size**2 pads."""

    name = "qwen2_vl"


class Qwen3VLPlugin(VisionPlugin):
    """Qwen3-VL (LLaMA-Factory's Qwen3VLPlugin): a video is one `<t seconds><|vision_start|>pads<|vision_end|>`
    block per temporal patch, t the mean time of the patch's frames, to one decimal."""

    name = "qwen3_vl"

    def timestamps(self, info: VideoInfo) -> list[float]:
        return patch_timestamps(info.frame_positions, self.settings.video_fps,
                                self.processor.video_processor.temporal_patch_size)

    def video_tokens(self, grid: tuple[int, int, int], info: VideoInfo) -> str:
        p = self.processor
        per_frame = grid[1] * grid[2] // p.video_processor.merge_size ** 2
        stamps = self.timestamps(info)
        return "".join(f"<{stamps[i]:.1f} seconds>{p.vision_start}{p.video_token * per_frame}{p.vision_end}"
                       for i in range(grid[0]))


PLUGINS: dict[str, type[VisionPlugin]] = {plugin.name: plugin for plugin in (Qwen2VLPlugin, Qwen3VLPlugin)}
SUPPORTED_PLUGINS = tuple(PLUGINS)


def get_plugin(mm_plugin: str, processor: Any, settings: MediaSettings | None = None) -> VisionPlugin:
    """The plugin of a template's `mm_plugin` name, bound to a checkpoint's processor."""
    plugins = PLUGINS
    if mm_plugin not in plugins:
        raise ConfigError(f"mm_plugin `{mm_plugin}` is not supported by tunesmith; supported: "
                          f"{', '.join(sorted(plugins))} (templates qwen2_vl, qwen3_vl, qwen3_vl_nothink)")
    if processor is None:
        raise ConfigError(f"mm_plugin `{mm_plugin}` needs the processor of a vision-language checkpoint, but the "
                          "model has none (a text-only model?)")
    return plugins[mm_plugin](processor, settings)
