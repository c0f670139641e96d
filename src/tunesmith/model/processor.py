"""The processor of a vision-language checkpoint, without torchvision: the tokenizer, transformers' PIL-backend
image processor (`AutoImageProcessor.from_pretrained(path, backend="pil")`) and model/qwen_video.py's video
processing, read from the checkpoint's preprocessor_config.json and video_preprocessor_config.json (the image
config where the video one is absent, as transformers falls back). A text-only checkpoint has none (None).
data/media/plugin.py turns it into placeholders and model inputs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.errors import ConfigError
from .qwen_video import QwenVideoProcessor, smart_resize_2d
from .vision import COMPOSITE, model_type as model_type_of, read_json

__all__ = ["VisionProcessor", "load_processor"]

_TEXT_MODEL_TYPES = {"qwen2_5_vl_text", "qwen2_vl_text", "qwen3_vl_text"}


@dataclass
class VisionProcessor:
    """Everything a VisionPlugin needs from a checkpoint."""

    model_type: str
    tokenizer: Any
    image_processor: Any  # transformers' Qwen2VLImageProcessorPil
    video_processor: QwenVideoProcessor
    image_token: str = "<|image_pad|>"
    video_token: str = "<|video_pad|>"
    vision_start: str = "<|vision_start|>"
    vision_end: str = "<|vision_end|>"

    @property
    def returns_second_per_grid_ts(self) -> bool:
        """Qwen2.5-VL's model takes the seconds each temporal patch spans (for its time-aligned rope)."""
        return self.model_type == "qwen2_5_vl"

    def image_grid(self, height: int, width: int) -> tuple[int, int, int]:
        """(1, h, w): the patch grid transformers' image processor gives an image of height x width."""
        ip = self.image_processor
        if not getattr(ip, "do_resize", True):
            return 1, height // ip.patch_size, width // ip.patch_size
        resized_h, resized_w = smart_resize_2d(height, width, ip.patch_size * ip.merge_size, ip.size.shortest_edge,
                                               ip.size.longest_edge)
        return 1, resized_h // ip.patch_size, resized_w // ip.patch_size


def load_processor(path: str | Path, tokenizer: Any = None) -> VisionProcessor | None:
    """The checkpoint's VisionProcessor, or None for a text model. `tokenizer` (e.g. one with added tokens)
    replaces the checkpoint's own. Never imports torchvision."""
    root = Path(path)
    model_type = model_type_of(root)
    if model_type not in COMPOSITE:
        has_vision = (root / "preprocessor_config.json").is_file() and model_type not in _TEXT_MODEL_TYPES
        if has_vision and model_type is not None:
            raise ConfigError(f"{root}: vision-language model_type `{model_type}` is not supported; tunesmith "
                              f"reads images and videos for {', '.join(sorted(COMPOSITE))}")
        return None
    image_config = root / "preprocessor_config.json"
    if not image_config.is_file():
        raise ConfigError(f"{root}: a {model_type} checkpoint without preprocessor_config.json (the image "
                          "processor's settings); copy it from the base model's folder")
    from transformers import AutoImageProcessor, AutoTokenizer

    image_processor = AutoImageProcessor.from_pretrained(str(root), backend="pil")
    video_config = root / "video_preprocessor_config.json"
    video_settings = read_json(video_config if video_config.is_file() else image_config)
    video_processor = QwenVideoProcessor.from_dict(COMPOSITE[model_type].family, video_settings)
    tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(str(root))
    names = {key: getattr(tokenizer, key, None) for key in ("image_token", "video_token", "vision_start_token",
                                                            "vision_end_token")}
    return VisionProcessor(model_type, tokenizer, image_processor, video_processor,
                           image_token=names["image_token"] or "<|image_pad|>",
                           video_token=names["video_token"] or "<|video_pad|>",
                           vision_start=names["vision_start_token"] or "<|vision_start|>",
                           vision_end=names["vision_end_token"] or "<|vision_end|>")


PREPROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json", "processor_config.json")


def copy_processor_files(folder: Path, out: Path) -> None:
    """The image and video processor settings of a vision-language model (its chat template is the tokenizer's:
    the training template, so a base model's own chat_template.json is not copied)."""
    for name in PREPROCESSOR_FILES:
        if not (folder / name).is_file():
            continue
        settings = read_json(folder / name)
        settings.pop("chat_template", None)  # an older processor's own template would override the training one
        (out / name).write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
