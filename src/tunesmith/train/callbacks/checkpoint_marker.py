"""Mark a checkpoint complete only after Trainer has written all of it (weights, optimizer, RNG, state).

Resume picks the newest *complete* checkpoint, so a run killed in the middle of a save never resumes
from a half-written directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from transformers import TrainerCallback

MARKER = "tunesmith_complete"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def mark_complete(folder: Path, step: int) -> None:
    """Written last, atomically: the checkpoint in ``folder`` is whole (every loop calls this)."""
    tmp = folder / (MARKER + ".tmp")
    tmp.write_text(str(step), encoding="utf-8")
    os.replace(tmp, folder / MARKER)


class CheckpointMarkerCallback(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            mark_complete(folder, state.global_step)


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
