"""The checkpoint life cycle: Trainer writes `checkpoint-N` (weights, optimizer, RNG, state); tunesmith then
writes the run's settings into it and, last and atomically, the completion marker; only after that are older
checkpoints rotated out (`save_total_limit`, applied here instead of inside Trainer, which rotates before
the new checkpoint is whole). Resume picks the newest *complete* checkpoint, so a kill at any instant
leaves the previous complete checkpoint or the new one, never neither.

States of a checkpoint folder: written (no marker: ignored, deleted by the next rotation) -> complete
(marker) -> rotated out (deleted, oldest first, never the best model's).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

from transformers import TrainerCallback

logger = logging.getLogger(__name__)

MARKER = "tunesmith_complete"
SETTINGS = "tunesmith_settings.json"  # the settings the checkpoint was trained with (compared on resume)
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def mark_complete(folder: Path, step: int) -> None:
    """Written last, atomically: the checkpoint in ``folder`` is whole (every loop calls this)."""
    tmp = folder / (MARKER + ".tmp")
    tmp.write_text(str(step), encoding="utf-8")
    os.replace(tmp, folder / MARKER)


def write_settings(folder: Path, settings: dict) -> None:
    tmp = folder / (SETTINGS + ".tmp")
    tmp.write_text(json.dumps(settings, indent=1, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, folder / SETTINGS)


def read_settings(folder: str | Path) -> dict | None:
    path = Path(folder) / SETTINGS
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def checkpoints(output_dir: str | Path) -> list[tuple[int, Path, bool]]:
    """(step, path, complete) for each checkpoint-N folder, oldest first."""
    out = []
    root = Path(output_dir)
    if not root.is_dir():
        return out
    for child in root.iterdir():
        match = _CHECKPOINT.match(child.name)
        if match and child.is_dir():
            out.append((int(match.group(1)), child, (child / MARKER).exists()))
    return sorted(out)


def last_complete_checkpoint(output_dir: str | Path) -> Path | None:
    done = [path for _, path, complete in checkpoints(output_dir) if complete]
    return done[-1] if done else None


def clear_markers(output_dir: str | Path) -> int:
    """Unmark every checkpoint of an earlier run (a fresh start with `overwrite_output_dir`): the new run
    rewrites those folders, and a half-rewritten folder must not look complete. Returns how many."""
    count = 0
    for _, path, complete in checkpoints(output_dir):
        if complete:
            (path / MARKER).unlink()
            count += 1
    return count


def rotate(output_dir: str | Path, limit: int | None, keep: set[Path] = frozenset()) -> list[Path]:
    """Delete checkpoints beyond the newest ``limit`` complete ones, and incomplete ones older than the newest
    complete one (left by a killed save), never one in ``keep``. Returns the deleted folders."""
    found = checkpoints(output_dir)
    complete = [path for _, path, done in found if done]
    if not complete:
        return []
    newest = max(step for step, _, done in found if done)
    doomed = [path for step, path, done in found if not done and step < newest]
    if limit and len(complete) > limit:
        doomed += complete[:-limit]
    kept = {k.resolve() for k in keep}
    removed = []
    for path in doomed:
        if path.resolve() in kept:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


class CheckpointMarkerCallback(TrainerCallback):
    """After Trainer wrote checkpoint-N: settings, marker, then rotation (``save_total_limit``)."""

    def __init__(self, save_total_limit: int | None = None, settings: dict | None = None) -> None:
        self.limit = save_total_limit
        self.settings = settings or {}

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if not folder.is_dir():
            return
        write_settings(folder, self.settings)
        mark_complete(folder, state.global_step)
        keep = {Path(state.best_model_checkpoint)} if state.best_model_checkpoint else set()
        for path in rotate(args.output_dir, self.limit, keep):
            logger.info("deleted %s (save_total_limit=%s)", path.name, self.limit)
