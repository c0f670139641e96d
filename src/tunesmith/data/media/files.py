"""Reading images and videos as LLaMA-Factory's data gives them: a path (relative to the data folder or absolute),
a dict with "path" or "bytes" (the Hugging Face datasets image layout), raw bytes, or an image already in memory;
a video is a file path (decoded with PyAV) or a list of frame images. Frames are sampled as LLaMA-Factory's
mm_plugin samples them (`sample_indices`). Every failure is a MediaError naming the file and why."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...config.errors import ConfigError
from .settings import MediaSettings

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["MediaError", "Video", "VideoInfo", "decode_image", "image_size", "load_image", "load_video", "probe_video",
           "sample_indices"]


class MediaError(ConfigError):
    """An image or video that cannot be used; `where` names the dataset and row once the caller knows them."""

    def __init__(self, message: str, file: str | None = None, where: str | None = None):
        self.bare_message, self.file, self.where = message, file, where
        super().__init__(f"{where}: {message}" if where else message)

    def located(self, where: str) -> MediaError:
        """The same error with its place in the data, e.g. ``err.located("dataset `x` row 3")``: raise it
        ``from`` the original."""
        return MediaError(self.bare_message, self.file, where)


def _describe(item: Any) -> str:
    if isinstance(item, (str, Path)):
        return str(item)
    if isinstance(item, dict):
        return str(item.get("path") or "<image bytes>")
    return f"<{type(item).__name__}>"


def _resolve(path: str | Path, base_dir: str | Path | None, kind: str) -> Path:
    text = str(path)
    if "://" in text:
        raise MediaError(f"{kind} {text}: remote URLs are not read; download the file and give its local path",
                         text)
    resolved = Path(text).expanduser()
    if not resolved.is_absolute() and base_dir is not None:
        resolved = Path(base_dir) / resolved
    if not resolved.is_file():
        place = f" (relative paths are read from {base_dir})" if base_dir is not None and not Path(text).is_absolute() \
            else ""
        raise MediaError(f"{kind} {resolved}: file not found{place}", str(resolved))
    return resolved


def _open_image(item: Any, base_dir: str | Path | None) -> tuple[Image, str]:
    """A lazily opened PIL image (header read) and the name to report."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(item, Image.Image):
        return item, _describe(item)
    if isinstance(item, dict):
        if item.get("bytes") is not None:
            source, name = io.BytesIO(item["bytes"]), str(item.get("path") or "<image bytes>")
        elif item.get("path"):
            source = _resolve(item["path"], base_dir, "image")
            name = str(source)
        else:
            raise MediaError("image entry is a dict without `path` or `bytes`", None)
    elif isinstance(item, (bytes, bytearray)):
        source, name = io.BytesIO(bytes(item)), "<image bytes>"
    elif isinstance(item, (str, Path)):
        source = _resolve(item, base_dir, "image")
        name = str(source)
    else:
        raise MediaError(f"image entries are paths, {{'path'|'bytes'}} dicts, bytes or PIL images, got "
                         f"{type(item).__name__}")
    try:
        return Image.open(source), name
    except UnidentifiedImageError:
        raise MediaError(f"image {name}: not an image format Pillow can read (unsupported format or corrupt file)",
                         name) from None
    except OSError as err:
        raise MediaError(f"image {name}: cannot be read ({err})", name) from None


def image_size(item: Any, base_dir: str | Path | None = None) -> tuple[int, int]:
    """(width, height) from the image's header, without decoding its pixels."""
    image, _ = _open_image(item, base_dir)
    return image.size


def decode_image(item: Any, base_dir: str | Path | None = None) -> Image:
    """The image decoded in its own mode (a truncated or corrupt file fails here)."""
    image, name = _open_image(item, base_dir)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as err:
        raise MediaError(f"image {name}: corrupt or truncated ({err})", name) from None
    return image


def load_image(item: Any, base_dir: str | Path | None = None) -> Image:
    """The image, decoded and converted to RGB."""
    image = decode_image(item, base_dir)
    return image if image.mode == "RGB" else image.convert("RGB")


def sample_indices(total_frames: int, duration: float, video_fps: float, video_maxlen: int) -> list[int]:
    """Which frames LLaMA-Factory samples (mm_plugin's _get_video_sample_indices): floor(duration * video_fps)
    frames (at least 1, at most the video's frames and video_maxlen), spread evenly from the first to the last."""
    import numpy as np

    count = max(1, math.floor(duration * video_fps))
    count = min(total_frames, video_maxlen, count)
    return [int(i) for i in np.linspace(0, total_frames - 1, count).astype(np.int32)]


@dataclass(frozen=True)
class VideoInfo:
    """What a video contributes before its pixels are decoded: the frame size, the sampled frames' places and
    the numbers LLaMA-Factory derives from them."""

    source: str
    width: int
    height: int
    indices: tuple[int, ...]  # sampled frame numbers (0-based, in order)
    frame_positions: tuple[float, ...]  # LLaMA-Factory's `frames_indices`: index / source fps * video_fps
    sampled_fps: float  # LLaMA-Factory's `fps_per_video`: sampled frames per second of video
    duration: float  # seconds

    @property
    def num_frames(self) -> int:
        return len(self.indices)


@dataclass(frozen=True)
class Video:
    """A video's sampled frames (PIL images in order: RGB from a file, a frame list's images in their own mode until
    regularised) and their metadata."""

    info: VideoInfo
    frames: tuple = field(repr=False)


def _video_stream(path: Path):
    import av

    try:
        container = av.open(str(path), "r")
    except (av.FFmpegError, OSError) as err:
        raise MediaError(f"video {path}: not a video PyAV can open (unsupported format or corrupt file: {err})",
                         str(path)) from None
    stream = next((s for s in container.streams if s.type == "video"), None)
    if stream is None:
        container.close()
        raise MediaError(f"video {path}: the file has no video stream", str(path))
    return container, stream


def _stream_timing(container, stream, path: Path, settings: MediaSettings) -> tuple[int, float, float | None]:
    """(frames, duration in seconds, average fps or None). A stream without a frame count (e.g. some WebM files)
    is counted by reading its packets; one without a duration takes the container's, else frames / fps."""
    fps = float(stream.average_rate) if stream.average_rate else None
    total = stream.frames
    if total == 0:
        total = sum(1 for packet in container.demux(stream) if packet.size)
        container.seek(0)
    if total == 0:
        raise MediaError(f"video {path}: the video stream holds no frames", str(path))
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    else:
        duration = total / (fps or settings.video_fps)
    return total, duration, fps


def _frame_list_info(frames: list, base_dir, settings: MediaSettings) -> VideoInfo:
    if not frames:
        raise MediaError("video given as a list of frames holds no frames")
    sizes = {image_size(frame, base_dir) for frame in frames}
    name = f"frames {_describe(frames[0])} ... ({len(frames)} frames)"
    if len(sizes) != 1:
        raise MediaError(f"video {name}: frames differ in size {sorted(sizes)}", _describe(frames[0]))
    (width, height), count = sizes.pop(), len(frames)
    # LLaMA-Factory takes such a list as frames already sampled at video_fps
    return VideoInfo(name, width, height, tuple(range(count)), tuple(float(i) for i in range(count)),
                     settings.video_fps, count / settings.video_fps)


def probe_video(item: Any, base_dir: str | Path | None, settings: MediaSettings) -> VideoInfo:
    """The video's size and sampled frames from its container metadata, without decoding a frame."""
    if isinstance(item, Video):
        return item.info
    if isinstance(item, (list, tuple)):
        return _frame_list_info(list(item), base_dir, settings)
    if not isinstance(item, (str, Path)):
        raise MediaError(f"video entries are paths or lists of frames, got {type(item).__name__}")
    path = _resolve(item, base_dir, "video")
    container, stream = _video_stream(path)
    try:
        total, duration, fps = _stream_timing(container, stream, path, settings)
        width, height = stream.codec_context.width, stream.codec_context.height
    finally:
        container.close()
    if not width or not height:
        raise MediaError(f"video {path}: the video stream has no frame size", str(path))
    indices = sample_indices(total, duration, settings.video_fps, settings.video_maxlen)
    source_fps = fps or settings.video_fps
    positions = tuple(i / source_fps * settings.video_fps for i in indices)
    return VideoInfo(str(path), width, height, tuple(indices), positions, len(indices) / duration, duration)


def load_video(item: Any, base_dir: str | Path | None, settings: MediaSettings) -> Video:
    """The sampled frames of a video (PIL images) with its metadata. A file whose decoded frames do not
    include every sampled frame (the container claims more frames than it holds) fails."""
    if isinstance(item, Video):
        return item
    info = probe_video(item, base_dir, settings)
    if isinstance(item, (list, tuple)):
        return Video(info, tuple(decode_image(frame, base_dir) for frame in item))
    path = Path(info.source)
    container, stream = _video_stream(path)
    wanted, frames = set(info.indices), []
    try:
        for number, frame in enumerate(container.decode(stream)):
            if number in wanted:
                frames.append(frame.to_image())
            if len(frames) == len(wanted):
                break
    except Exception as err:  # PyAV raises codec-specific errors (InvalidDataError, ...) for broken streams
        raise MediaError(f"video {path}: decoding failed at frame {len(frames)} ({err})", str(path)) from None
    finally:
        container.close()
    if len(frames) != len(wanted):
        raise MediaError(f"video {path}: {len(frames)} of the {len(wanted)} sampled frames could be decoded (the "
                         "file is truncated or its frame count is wrong)", str(path))
    return Video(info, tuple(frames))
