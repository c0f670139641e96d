"""Write tunesmith's own multimodal demo media into data/mllm_demo_data/ (coloured shapes and short clips of moving
shapes), deterministically, for data/mllm_demo.json, data/mllm_video_demo.json and data/mllm_dpo_demo.json
(LLaMA-Factory's mllm_demo / mllm_video_demo / rlhf_v layouts).

    python scripts/make_mllm_demo.py [OUT_DIR]    (default: data/mllm_demo_data)

Needs Pillow and PyAV (the `vision` extra). Same versions -> byte-identical files (one encoder thread)."""

from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "data" / "mllm_demo_data"
GREY, RED, BLUE, GREEN, ORANGE, WHITE = (128, 128, 128), (220, 30, 30), (30, 60, 220), (30, 170, 60), \
    (240, 140, 20), (245, 245, 245)


def image_1() -> Image.Image:
    """A red circle left of a blue square on grey (96x64)."""
    image = Image.new("RGB", (96, 64), GREY)
    draw = ImageDraw.Draw(image)
    draw.ellipse((8, 16, 40, 48), fill=RED)
    draw.rectangle((56, 16, 88, 48), fill=BLUE)
    return image


def image_2() -> Image.Image:
    """A green triangle on white (64x64)."""
    image = Image.new("RGB", (64, 64), WHITE)
    ImageDraw.Draw(image).polygon([(32, 6), (58, 56), (6, 56)], fill=GREEN)
    return image


def image_3() -> Image.Image:
    """Three orange stripes on grey, taller than wide (80x120)."""
    image = Image.new("RGB", (80, 120), GREY)
    draw = ImageDraw.Draw(image)
    for top in (10, 50, 90):
        draw.rectangle((8, top, 72, top + 20), fill=ORANGE)
    return image


def frames_ball(count: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """A red ball moving from left to right on white."""
    out = []
    for i in range(count):
        image = Image.new("RGB", (width, height), WHITE)
        x = 4 + i * (width - 24) // max(count - 1, 1)
        ImageDraw.Draw(image).ellipse((x, 14, x + 16, 30), fill=RED)
        out.append(np.asarray(image))
    return out


def frames_growing_square(count: int, size: int = 48) -> list[np.ndarray]:
    """A blue square growing from the centre on grey."""
    out = []
    for i in range(count):
        image = Image.new("RGB", (size, size), GREY)
        half = 3 + i * (size // 2 - 6) // max(count - 1, 1)
        ImageDraw.Draw(image).rectangle((size // 2 - half, size // 2 - half, size // 2 + half, size // 2 + half),
                                        fill=BLUE)
        out.append(np.asarray(image))
    return out


def frames_falling_bar(count: int, size: int = 64) -> list[np.ndarray]:
    """A green bar moving from the top to the bottom on white."""
    out = []
    for i in range(count):
        image = Image.new("RGB", (size, size), WHITE)
        top = i * (size - 10) // max(count - 1, 1)
        ImageDraw.Draw(image).rectangle((4, top, size - 4, top + 8), fill=GREEN)
        out.append(np.asarray(image))
    return out


def write_video(path: Path, frames: list[np.ndarray], fps: int, codec: str) -> None:
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps, options={"threads": "1"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def write_all(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in (("1.jpg", image_1), ("2.jpg", image_2), ("3.jpg", image_3)):
        make().save(out / name, quality=90)
        written.append(out / name)
    for name, frames, fps, codec in (("1.mp4", frames_ball(16), 8, "libx264"),
                                     ("2.avi", frames_growing_square(12), 6, "mpeg4"),
                                     ("3.mp4", frames_falling_bar(20), 10, "libx264")):
        write_video(out / name, frames, fps, codec)
        written.append(out / name)
    return written


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else DEFAULT_OUT
    files = write_all(out)
    print(f"wrote {len(files)} files ({sum(f.stat().st_size for f in files) / 1024:.1f} KiB) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
