"""The one transformers.Trainer subclass. Stages change only the loss; everything else is Trainer's."""

from __future__ import annotations

from transformers import Trainer


class TunesmithTrainer(Trainer):
    def __init__(self, *args, stage=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stage = stage

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        stage_loss = getattr(self.stage, "compute_loss", None)
        if stage_loss is not None:
            return stage_loss(self, model, inputs, return_outputs, num_items_in_batch)
        return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                    num_items_in_batch=num_items_in_batch)
