"""Trainer events -> gates (train/gates.py): close at the start, restore rows after each optimizer step,
open on schedule."""

from __future__ import annotations

from transformers import TrainerCallback

from ..gates import Gates


class GateCallback(TrainerCallback):
    def __init__(self, gates: Gates) -> None:
        self.gates = gates

    def on_train_begin(self, args, state, control, **kwargs):
        self.gates.begin(state.global_step)

    def on_step_begin(self, args, state, control, **kwargs):
        self.gates.before_step(state.global_step)  # global_step = steps completed = index of the next step

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.gates.after_optimizer_step(state.global_step)  # not yet incremented: the step just taken
