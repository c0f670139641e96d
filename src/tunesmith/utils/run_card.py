"""Reading tunesmith.json, the card a finished run leaves in its output_dir (written by train/save.py)."""

from __future__ import annotations

import json
from pathlib import Path

RUN_CARD = "tunesmith.json"


def read_run_card(output_dir: str | Path) -> dict | None:
    path = Path(output_dir) / RUN_CARD
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def embedding_rows_of(output_dir: str | Path) -> int | None:
    """Rows of the input embedding the run trained with (after any token resize), if recorded."""
    card = read_run_card(output_dir)
    return card.get("embedding_rows") if card else None
