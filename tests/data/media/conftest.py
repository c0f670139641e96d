"""Small media files written per test session: images in several modes and formats, short video clips, and
files that fail in each way a data row can."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_clip(path: Path, frames: int, fps: int, width: int = 64, height: int = 48, codec: str = "libx264") -> Path:
    """An mp4 clip whose frame i shows a red bar 3*i pixels wide (deterministic: one encoder thread)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps, options={"threads": "1"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            array = np.zeros((height, width, 3), np.uint8)
            array[:, : (3 * i) % width] = (200, 30, 30)
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def gradient(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], axis=-1)
    return np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("media")
    (root / "img").mkdir()
    Image.fromarray(gradient(64, 64)).save(root / "img" / "square.png")
    Image.fromarray(gradient(120, 40, seed=1)).save(root / "img" / "wide.jpg", quality=90)
    Image.fromarray(gradient(20, 50, seed=2)[..., 0]).save(root / "img" / "gray_small.png")  # mode L, side < 28
    Image.fromarray(gradient(900, 700, seed=3)).save(root / "img" / "large.png")  # above image_max_pixels
    Image.fromarray(gradient(32, 32, seed=4)).convert("P").save(root / "img" / "palette.png")
    (root / "img" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)
    good = (root / "img" / "square.png").read_bytes()
    (root / "img" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "img" / "notes.txt").write_text("this is text, not an image\n")
    write_clip(root / "clip.mp4", frames=20, fps=10)  # 2.0 s
    write_clip(root / "long.mp4", frames=90, fps=15, width=80, height=60)  # 6.0 s
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 20)
    return root


@pytest.fixture(scope="session")
def clip_writer():
    """write_clip, for tests that need a clip of their own."""
    return write_clip
