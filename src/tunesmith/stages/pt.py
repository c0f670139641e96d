"""Stage pt: continued pretraining on raw text (text + EOS, concatenated, cut into cutoff_len rows,
attention kept inside each document). Its loss is the causal-LM loss (train/losses.py, or the chunked one
of train/head_loss.py)."""

from __future__ import annotations

from .base import Stage


class PretrainStage(Stage):
    name = "pt"
    data_kind = "text"
