"""The bundled multimodal demo data: LLaMA-Factory's layouts and registry entries, media that regenerate byte for
byte from scripts/make_mllm_demo.py, and rows whose placeholders expand to the tokens their media need."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tunesmith.data.media.plugin import get_plugin
from tunesmith.model.processor import load_processor

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "data"
TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


def _rows(name: str) -> list[dict]:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def test_registered_as_llamafactory_registers_them():
    info = json.loads((DATA / "dataset_info.json").read_text(encoding="utf-8"))
    assert info["mllm_demo"] == {"file_name": "mllm_demo.json", "formatting": "sharegpt",
                                 "columns": {"messages": "messages", "images": "images"}, "tags": TAGS}
    assert info["mllm_video_demo"] == {"file_name": "mllm_video_demo.json", "formatting": "sharegpt",
                                       "columns": {"messages": "messages", "videos": "videos"}, "tags": TAGS}
    # rlhf_v's columns, on a local file
    assert info["mllm_dpo_demo"] == {"file_name": "mllm_dpo_demo.json", "ranking": True, "formatting": "sharegpt",
                                     "columns": {"messages": "conversations", "chosen": "chosen",
                                                 "rejected": "rejected", "images": "images"}}


def test_media_regenerate_identically_and_stay_small(tmp_path):
    spec = importlib.util.spec_from_file_location("make_mllm_demo", REPO / "scripts" / "make_mllm_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.write_all(tmp_path)
    committed = sorted((DATA / "mllm_demo_data").iterdir())
    assert [p.name for p in committed] == sorted(p.name for p in written)
    for path in committed:
        assert path.read_bytes() == (tmp_path / path.name).read_bytes(), path.name
    total = sum(p.stat().st_size for p in DATA.glob("mllm_*") if p.is_file()) + \
        sum(p.stat().st_size for p in committed)
    assert total < 300 * 1024


def _media_texts(row: dict) -> tuple[list[str], list, list]:
    if "conversations" in row:
        texts = [turn["value"] for turn in row["conversations"]] + [row["chosen"]["value"], row["rejected"]["value"]]
    else:
        texts = [turn["content"] for turn in row["messages"]]
    return texts, row.get("images", []), row.get("videos", [])


@pytest.mark.parametrize("fixture, name", [("qwen2_vl_model", "qwen2_vl"), ("qwen3_vl_model", "qwen3_vl")])
def test_every_row_expands_consistently(fixture, name, request):
    plugin = get_plugin(name, load_processor(request.getfixturevalue(fixture)))
    merge = plugin.processor.image_processor.merge_size ** 2
    for file in ("mllm_demo.json", "mllm_video_demo.json", "mllm_dpo_demo.json"):
        for row in _rows(file):
            texts, images, videos = _media_texts(row)
            expanded = plugin.expand(texts, images, videos, DATA)
            features = plugin.features(images, videos, DATA)
            joined = "".join(expanded)
            p = plugin.processor
            if images:
                assert joined.count(p.image_token) == int(features["image_grid_thw"].prod(dim=1).sum()) // merge
            if videos:
                assert joined.count(p.video_token) == int(features["video_grid_thw"].prod(dim=1).sum()) // merge
            assert bool(images) + bool(videos) == 1
