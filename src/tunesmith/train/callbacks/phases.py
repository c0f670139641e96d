"""Logs where each dataset of `mix_strategy: sequential` starts, in optimizer steps."""

from __future__ import annotations

import logging
import math

from transformers import TrainerCallback

from ...data.sampler import phase_start_steps

logger = logging.getLogger(__name__)


class PhaseLogCallback(TrainerCallback):
    """``batch_counts``: micro-batches per phase under token-budget batching (else batches of
    per_device_train_batch_size examples)."""

    def __init__(self, names: list[str], phase_sizes: list[int], batch_counts: list[int] | None = None) -> None:
        self.names = names
        self.sizes = phase_sizes
        self.batch_counts = batch_counts
        self.starts: dict[int, int] = {}  # global step -> phase index

    def on_train_begin(self, args, state, control, **kwargs):
        units, per_step = self.sizes, args.per_device_train_batch_size
        if self.batch_counts is not None:
            units, per_step = self.batch_counts, 1
        per_step *= args.gradient_accumulation_steps * max(args.world_size, 1)
        steps_per_epoch = math.ceil(sum(units) / per_step)
        starts = phase_start_steps(units, per_step)
        epochs = math.ceil(state.max_steps / max(steps_per_epoch, 1))
        self.starts = {e * steps_per_epoch + s: k for e in range(epochs) for k, s in enumerate(starts)}
        plan = ", ".join(f"{name} ({size} examples) from step {start}"
                         for name, size, start in zip(self.names, self.sizes, starts))
        logger.info("sequential phases per epoch of %d steps: %s", steps_per_epoch, plan)

    def on_step_begin(self, args, state, control, **kwargs):
        step = state.global_step + 1
        if step in self.starts:
            k = self.starts[step]
            logger.info("sequential phase %d/%d: dataset `%s` starts at step %d", k + 1, len(self.names),
                        self.names[k], step)
