"""How images and videos are read before a processor sees them: LLaMA-Factory's ProcessorArguments keys and
defaults (image_max_pixels, image_min_pixels, video_max_pixels, video_min_pixels, video_fps, video_maxlen)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ...config.errors import ConfigError


@dataclass(frozen=True)
class MediaSettings:
    """Pixel budgets and frame sampling, as LLaMA-Factory names and defaults them."""

    image_max_pixels: int = 768 * 768
    image_min_pixels: int = 32 * 32
    video_max_pixels: int = 256 * 256
    video_min_pixels: int = 16 * 16
    video_fps: float = 2.0
    video_maxlen: int = 128

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            kind = float if field.name == "video_fps" else int
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 \
                    or (kind is int and int(value) != value):
                raise ConfigError(f"`{field.name}` must be a positive {kind.__name__}, got {value!r}")
            object.__setattr__(self, field.name, kind(value))
        for kind in ("image", "video"):
            low, high = getattr(self, f"{kind}_min_pixels"), getattr(self, f"{kind}_max_pixels")
            if low > high:
                raise ConfigError(f"`{kind}_min_pixels` ({low}) is larger than `{kind}_max_pixels` ({high})")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | object) -> MediaSettings:
        """Settings from a mapping (or an object with these attributes, e.g. the config's media section); keys
        that are absent or None keep LLaMA-Factory's defaults, other keys are ignored."""
        names = [field.name for field in fields(cls)]
        if isinstance(values, Mapping):
            found = {name: values.get(name) for name in names}
        else:
            found = {name: getattr(values, name, None) for name in names}
        return cls(**{name: value for name, value in found.items() if value is not None})
