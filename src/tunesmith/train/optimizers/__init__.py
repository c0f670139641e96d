"""The optimizer families of LLaMA-Factory's finetuning keys (GaLore, APOLLO, LoRA+, BAdam, Adam-mini, Muon), one
small module each; the maintained libraries do the math. `OptimizerChoice` is what the loops ask: an optimizer
(None: Trainer's own from `optim`, which is every run that sets none of these keys), its scheduler (None:
Trainer's), and the callbacks it needs. Config rules (config/rules_optimizers.py) have refused what cannot work
before anything loads."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def chosen(ft) -> str | None:
    """The family the config turns on (the rules allow one), in LLaMA-Factory's order."""
    if ft.use_galore:
        return "galore"
    if ft.use_apollo:
        return "apollo"
    if ft.loraplus_lr_ratio is not None:
        return "loraplus"
    if ft.use_badam:
        return "badam"
    if ft.use_adam_mini:
        return "adam_mini"
    if ft.use_muon:
        return "muon"
    return None


def build_optimizer(model, args, ft, accelerator=None):
    """The optimizer of the family ``ft`` (the finetuning section) turns on, or None. ``accelerator``: the
    loop's, when it clips gradients through it (BAdam's ratio mode makes them sparse)."""
    family = chosen(ft)
    if family in ("galore", "apollo"):
        from .lowrank import build_low_rank

        return build_low_rank(model, args, ft, family)
    if family == "loraplus":
        from .loraplus import build_loraplus

        return build_loraplus(model, args, ft)
    if family == "badam":
        from .badam import build_badam

        return build_badam(model, args, ft, accelerator)
    if family == "adam_mini":
        from .adam_mini import build_adam_mini

        return build_adam_mini(model, args)
    if family == "muon":
        from .muon import build_muon

        return build_muon(model, args)
    return None


def build_scheduler(optimizer, args, num_training_steps: int):
    """A layer-wise optimizer's scheduler (one schedule per weight), or None for Trainer's."""
    from .layerwise import LayerwiseOptimizer, LayerwiseScheduler

    if isinstance(optimizer, LayerwiseOptimizer):
        return LayerwiseScheduler(optimizer, args, num_training_steps)
    return None


class OptimizerChoice:
    """What Trainer's loop asks (train/trainer.py): ``optimizer(model, args)``, ``scheduler(optimizer, args,
    steps)`` and ``callbacks()`` (added after the gate callback, so layer-wise hooks run after the gates')."""

    def __init__(self, ft) -> None:
        self.ft = ft
        self.built = None

    def __bool__(self) -> bool:
        return chosen(self.ft) is not None

    def optimizer(self, model, args, accelerator=None):
        self.built = build_optimizer(model, args, self.ft, accelerator)
        return self.built

    def scheduler(self, optimizer, args, num_training_steps: int):
        return build_scheduler(self.built, args, num_training_steps)

    def callbacks(self) -> list:
        from .layerwise import AttachLayerwise

        return [AttachLayerwise(lambda: self.built)] if self else []
