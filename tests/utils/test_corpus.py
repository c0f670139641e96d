"""Tokenizer-training text from a data folder: strings of JSON/JSONL, lines of text; media files are left out."""

from __future__ import annotations

import json

from tunesmith.utils.corpus import texts_from_files


def test_a_data_folder_gives_its_text_and_skips_its_images(tmp_path):
    (tmp_path / "rows.json").write_text(json.dumps([{"instruction": "hello", "output": "world"}]))
    (tmp_path / "rows.jsonl").write_text(json.dumps({"text": "line"}) + "\n")
    (tmp_path / "notes.txt").write_text("plain")
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "1.jpg").write_bytes(b"\xff\xd8\xff\xe0 not text")
    (tmp_path / "media" / "1.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    assert sorted(texts_from_files([str(tmp_path)])) == ["hello", "line", "plain", "world"]
