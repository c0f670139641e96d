"""Early stopping (LLaMA-Factory's `early_stopping_steps`): transformers' EarlyStoppingCallback stops training
after that many evaluations without an improvement of `metric_for_best_model` (default: the eval loss; any
reported metric works, e.g. `special_f1` or `accuracy`, whose direction `greater_is_better` infers)."""

from __future__ import annotations

import logging

from ..config.schema import Config

logger = logging.getLogger(__name__)


def early_stopping_arguments(cfg: Config) -> dict:
    """TrainingArguments that early stopping needs: the metric it watches (the loss unless one is named)."""
    if cfg.evaluation.early_stopping_steps is None or cfg.training.get("metric_for_best_model"):
        return {}
    return {"metric_for_best_model": "loss"}


def early_stopping_callbacks(cfg: Config) -> list:
    from transformers import EarlyStoppingCallback

    steps = cfg.evaluation.early_stopping_steps
    if steps is None:
        return []
    logger.info("early stopping: training stops after %d evaluations without a better eval_%s", steps,
                cfg.training.get("metric_for_best_model") or "loss")
    return [EarlyStoppingCallback(early_stopping_patience=steps)]
