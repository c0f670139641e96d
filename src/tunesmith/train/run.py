"""A training run, top to bottom: stage -> run plan (every decision, logged and saved) -> output dir and
resume policy -> tokenizer, template, data -> model, method, tokens, gates -> the stage's loop (Trainer, or
the rollout loop) -> the output dir (model or adapter, tokenizer, logs, plots, tunesmith.json)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..config.schema import Config
from ..stages.registry import get_stage
from .setup import RunResult  # noqa: F401  (re-exported: what run_training returns)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loop:
    run: Callable  # (cfg, plan, stage, prepared, policy, resume, callbacks) -> RunResult
    resumable: bool  # continues from a complete checkpoint in output_dir


def trainer_loop(*args):
    from .trainer_loop import train_with_trainer

    return train_with_trainer(*args)


def rollout_loop(*args):
    from .rl.ppo_run import train_with_rollouts

    return train_with_rollouts(*args)


def grpo_loop(*args):
    from .rl.grpo_run import train_with_groups

    return train_with_groups(*args)


LOOPS = {"trainer": Loop(trainer_loop, resumable=True), "rollout": Loop(rollout_loop, resumable=False),
         "grpo": Loop(grpo_loop, resumable=False)}


def run_training(cfg: Config, extra_callbacks: list | None = None) -> RunResult:
    from transformers import set_seed

    from ..model.compat import drift
    from .callbacks.checkpoint_marker import CheckpointMarkerCallback
    from .callbacks.log_file import LogFileCallback
    from .early_stop import early_stopping_callbacks
    from .plan import make_plan
    from .prepare import prepare
    from .setup import finished_run, resume_point, run_settings, setup_model, writable_output_dir
    from .speed import allocator_settings, liger_note

    allocator_settings(cfg)
    liger_note(cfg)
    for name, (checked, installed) in drift().items():
        logger.warning("%s %s is installed; tunesmith's use of its internals was checked against %s "
                       "(model/compat.py)", name, installed, checked)
    stage = get_stage(cfg.stage)
    plan = make_plan(cfg, stage)
    logger.info(plan.summary())
    loop = LOOPS[plan.loop]
    if loop.resumable and (done := finished_run(cfg)) is not None:
        return done
    resume = resume_point(cfg, resumable=loop.resumable)
    writable_output_dir(cfg.output_dir)
    set_seed(plan.seed)
    prepared = prepare(cfg, stage, plan)
    policy = setup_model(cfg, plan, prepared)
    markers = CheckpointMarkerCallback(cfg.training.get("save_total_limit"), run_settings(cfg))
    callbacks = [LogFileCallback(cfg.output_dir), markers, *early_stopping_callbacks(cfg), *(extra_callbacks or [])]
    return loop.run(cfg, plan, stage, prepared, policy, resume, callbacks)
