"""Every example config loads and validates for its command; the referenced datasets and templates exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.config.load import load_config
from tunesmith.data.registry import get_dataset_attrs
from tunesmith.templates.builtin import get_template

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").rglob("*.yaml"))
PURPOSES = {"inference": "infer", "merge_lora": "export"}  # folders of configs for chat/api and export


def test_there_are_examples():
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(REPO)))
def test_example_validates(path, monkeypatch):
    monkeypatch.chdir(REPO)
    purpose = PURPOSES.get(path.parent.name, "train")
    cfg = load_config([str(path)], purpose=purpose)
    if purpose == "train":
        for attr in get_dataset_attrs(cfg.data.dataset, cfg.data.dataset_dir):
            assert Path(attr.source).exists(), attr.source
    if cfg.data.template:
        get_template(cfg.data.template)
