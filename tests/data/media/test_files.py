"""Reading images and videos in every form LLaMA-Factory's data gives them, frame sampling as its mm_plugin
samples, and errors that name the file and why."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.data.media.files import MediaError, image_size, load_image, load_video, probe_video, sample_indices
from tunesmith.data.media.settings import MediaSettings


def test_image_forms_give_the_same_rgb_image(media_dir):
    path = media_dir / "img" / "square.png"
    raw = path.read_bytes()
    by_path = load_image("img/square.png", media_dir)
    for item in (str(path), {"path": "img/square.png", "bytes": None}, {"bytes": raw, "path": None}, raw, by_path):
        image = load_image(item, media_dir)
        assert image.mode == "RGB" and image.size == (64, 64)
        assert image.tobytes() == by_path.tobytes()
    assert load_image("img/gray_small.png", media_dir).mode == "RGB"
    assert image_size("img/wide.jpg", media_dir) == (120, 40)


@pytest.mark.parametrize("name, why", [
    ("img/missing.png", "file not found"),
    ("img/corrupt.png", "cannot be read|corrupt"),
    ("img/notes.txt", "unsupported format or corrupt"),
    ("img/truncated.png", "corrupt or truncated"),
])
def test_bad_images_name_file_and_reason(media_dir, name, why):
    with pytest.raises(MediaError) as caught:
        load_image(name, media_dir)
    message = str(caught.value)
    assert re.search(why, message) and Path(name).name in message
    assert isinstance(caught.value, ConfigError)
    located = caught.value.located("dataset `mllm_demo` row 3")
    assert str(located) == f"dataset `mllm_demo` row 3: {message}"
    assert located.file == caught.value.file


def test_remote_urls_and_odd_items_are_refused(media_dir):
    with pytest.raises(MediaError, match="remote URLs are not read"):
        load_image("https://example.com/cat.png", media_dir)
    with pytest.raises(MediaError, match="got int"):
        load_image(42, media_dir)
    with pytest.raises(MediaError, match="without `path` or `bytes`"):
        load_image({"path": None, "bytes": None}, media_dir)


@pytest.mark.parametrize("frames, duration, fps, maxlen, expected", [
    (20, 2.0, 2.0, 128, [0, 6, 12, 19]),  # floor(2.0 * 2) = 4 frames over 0..19
    (90, 6.0, 2.0, 128, [0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 89]),  # 12: linspace(0, 89, 12) truncated
    (90, 6.0, 2.0, 5, [0, 22, 44, 66, 89]),  # video_maxlen caps the count
    (3, 10.0, 2.0, 128, [0, 1, 2]),  # never more than the video's frames
    (10, 0.2, 2.0, 128, [0]),  # at least one frame
])
def test_sample_indices_follow_llamafactory(frames, duration, fps, maxlen, expected):
    assert sample_indices(frames, duration, fps, maxlen) == expected


def test_video_probe_and_frames_agree(media_dir):
    settings = MediaSettings()
    info = probe_video("clip.mp4", media_dir, settings)
    assert (info.width, info.height, info.duration) == (64, 48, 2.0)
    assert info.indices == (0, 6, 12, 19)
    assert info.frame_positions == tuple(i / 10 * 2.0 for i in (0, 6, 12, 19))  # index / source fps * video_fps
    assert info.sampled_fps == 4 / 2.0
    video = load_video("clip.mp4", media_dir, settings)
    assert video.info == info and len(video.frames) == 4
    # frame i shows a red bar 3*i pixels wide: the sampled frames are the ones named by the indices
    widths = [sum(1 for x in range(64) if frame.getpixel((x, 24))[0] > 120) for frame in video.frames]
    assert [round(w / 3) for w in widths] == [0, 6, 12, 19]


def test_video_maxlen_and_fps_settings(media_dir):
    info = probe_video("long.mp4", media_dir, MediaSettings(video_fps=1.0, video_maxlen=4))
    assert info.indices == (0, 29, 59, 89) and info.duration == 6.0


def test_video_given_as_frames(media_dir):
    frames = ["img/square.png", "img/square.png", "img/square.png"]
    video = load_video(frames, media_dir, MediaSettings(video_fps=2.0))
    assert video.info.num_frames == 3 and video.info.frame_positions == (0.0, 1.0, 2.0)
    assert video.info.sampled_fps == 2.0 and video.info.duration == 1.5
    with pytest.raises(MediaError, match="frames differ in size"):
        probe_video(["img/square.png", "img/wide.jpg"], media_dir, MediaSettings())


@pytest.mark.parametrize("name, why", [
    ("missing.mp4", "file not found"),
    ("broken.mp4", "not a video PyAV can open"),
    ("img/notes.txt", "not a video PyAV can open"),
])
def test_bad_videos_name_file_and_reason(media_dir, name, why):
    with pytest.raises(MediaError, match=why) as caught:
        load_video(name, media_dir, MediaSettings())
    assert Path(name).name in str(caught.value)


def test_settings_defaults_and_checks():
    s = MediaSettings()
    assert (s.image_max_pixels, s.image_min_pixels, s.video_max_pixels, s.video_min_pixels, s.video_fps,
            s.video_maxlen) == (768 * 768, 32 * 32, 256 * 256, 16 * 16, 2.0, 128)
    assert MediaSettings.from_mapping({"video_fps": 1, "video_maxlen": None, "other": 3}).video_fps == 1.0
    with pytest.raises(ConfigError, match="video_maxlen"):
        MediaSettings(video_maxlen=0)
    with pytest.raises(ConfigError, match="image_min_pixels"):
        MediaSettings(image_min_pixels=10, image_max_pixels=5)


def test_webm_without_frame_count_or_stream_duration(tmp_path, clip_writer):
    """A WebM stream states neither its frame count nor its duration: frames are counted from the packets and
    the container's duration is used (LLaMA-Factory fails on such a stream)."""
    clip_writer(tmp_path / "clip.webm", frames=12, fps=6, codec="libvpx")
    info = probe_video("clip.webm", tmp_path, MediaSettings())
    assert info.duration == 2.0 and info.indices == (0, 3, 7, 11)
    assert len(load_video("clip.webm", tmp_path, MediaSettings()).frames) == 4
