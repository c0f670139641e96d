"""The multimodal section: how images and videos are read and which parts of a vision-language model train.
LLaMA-Factory's keys and defaults (its ProcessorArguments, media_dir and the freeze_* switches)."""

from __future__ import annotations

from dataclasses import dataclass

from .fields import opt


@dataclass(frozen=True)
class MediaArgs:
    """Images and videos of vision-language models (Qwen2-VL, Qwen2.5-VL, Qwen3-VL)."""

    image_max_pixels: int = opt(768 * 768, "An image with more pixels is scaled down (aspect ratio kept) before the "
                                           "processor sees it.")
    image_min_pixels: int = opt(32 * 32, "An image with fewer pixels is scaled up (aspect ratio kept).")
    video_max_pixels: int = opt(256 * 256, "Each sampled video frame with more pixels is scaled down.")
    video_min_pixels: int = opt(16 * 16, "Each sampled video frame with fewer pixels is scaled up.")
    video_fps: float = opt(2.0, "Frames sampled per second of video.")
    video_maxlen: int = opt(128, "At most this many frames are sampled from one video.")
    media_dir: str | None = opt(None, "Folder that relative image/video paths of the data are read from "
                                      "(default: dataset_dir).")
    freeze_vision_tower: bool = opt(True, "Keep the vision encoder frozen (full/freeze), or out of LoRA's targets.")
    freeze_multi_modal_projector: bool = opt(True, "Keep the projector between vision encoder and language model "
                                                   "frozen (full/freeze).")
    freeze_language_model: bool = opt(False, "Keep the language model frozen (full/freeze): train the vision side "
                                             "only.")
