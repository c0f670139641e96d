"""trainer_log.jsonl: one JSON line per logging step (LLaMA-Factory's field names), kept consistent on resume."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from transformers import TrainerCallback

LOG_FILE = "trainer_log.jsonl"


class LogFileCallback(TrainerCallback):
    def __init__(self, output_dir: str) -> None:
        self.path = Path(output_dir) / LOG_FILE
        self.start = time.time()
        self.start_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.start = time.time()
        self.start_step = state.global_step
        if self.path.exists():
            # Resuming: drop lines logged after the checkpoint we continue from.
            kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                    if line.strip() and json.loads(line).get("current_steps", 0) <= state.global_step]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
            os.replace(tmp, self.path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        elapsed = time.time() - self.start
        done = max(state.global_step - self.start_step, 1)
        remaining = elapsed / done * max(state.max_steps - state.global_step, 0)
        record = {"current_steps": state.global_step, "total_steps": state.max_steps}
        for key, value in logs.items():
            record["lr" if key == "learning_rate" else key] = value
        record.update(epoch=round(state.epoch or 0.0, 4),
                      percentage=round(100.0 * state.global_step / max(state.max_steps, 1), 2),
                      elapsed_time=_hms(elapsed), remaining_time=_hms(remaining))
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def _hms(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def read_log(output_dir: str | Path) -> list[dict]:
    path = Path(output_dir) / LOG_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
