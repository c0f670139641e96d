"""Stage sft: supervised fine-tuning on conversations; only replies (with their end-of-turn token) train.
Its loss is the causal-LM loss (train/losses.py, or the chunked one of train/head_loss.py)."""

from __future__ import annotations

from .base import Stage


class SupervisedStage(Stage):
    name = "sft"
    data_kind = "supervised"
    packs = True

    def needs_reference(self, cfg) -> bool:
        return cfg.finetuning.use_asft_loss  # ASFT's KL term compares with the starting model
