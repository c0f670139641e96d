"""LLaMA-Factory's image regularisation before the processor (mm_plugin's _preprocess_image, and Qwen2VLPlugin's
additions): an image above `max_pixels` is scaled down, one below `min_pixels` scaled up (aspect ratio kept,
sides truncated to integers); for Qwen-VL a side below 28 pixels is raised to 28 and an aspect ratio above 200
is cut to 180. The same rules as plain arithmetic give the size without touching pixels."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

QWEN_MIN_SIDE = 28


def _steps(width: int, height: int, max_pixels: int, min_pixels: int, qwen: bool) -> list[tuple[int, int]]:
    """The sizes the image is resized to, in order (LLaMA-Factory resizes once per rule that applies)."""
    steps = []
    if width * height > max_pixels:
        factor = math.sqrt(max_pixels / (width * height))
        width, height = int(width * factor), int(height * factor)
        steps.append((width, height))
    if width * height < min_pixels:
        factor = math.sqrt(min_pixels / (width * height))
        width, height = int(width * factor), int(height * factor)
        steps.append((width, height))
    if qwen:
        if min(width, height) < QWEN_MIN_SIDE:
            width, height = max(width, QWEN_MIN_SIDE), max(height, QWEN_MIN_SIDE)
            steps.append((width, height))
        if width / height > 200:
            width, height = height * 180, height
            steps.append((width, height))
        if height / width > 200:
            width, height = width, width * 180
            steps.append((width, height))
    return steps


def regularized_size(width: int, height: int, max_pixels: int, min_pixels: int, qwen: bool) -> tuple[int, int]:
    """(width, height) after the rules, computed from the original size."""
    steps = _steps(width, height, max_pixels, min_pixels, qwen)
    return steps[-1] if steps else (width, height)


def regularize_image(image: Image, max_pixels: int, min_pixels: int, qwen: bool) -> Image:
    """The image resized as LLaMA-Factory resizes it: Pillow's default resampling, one resize per rule, in the
    image's own mode for the pixel rules, then converted to RGB, then Qwen's rules."""
    base = _steps(image.width, image.height, max_pixels, min_pixels, False)
    for size in base:
        image = image.resize(size)
    image = image if image.mode == "RGB" else image.convert("RGB")
    for size in _steps(image.width, image.height, max_pixels, min_pixels, qwen)[len(base):]:
        image = image.resize(size)
    return image
