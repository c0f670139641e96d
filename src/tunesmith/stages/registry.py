"""Every stage by name. Adding a stage: one module with a ``Stage`` subclass, listed here."""

from __future__ import annotations

from ..config.errors import ConfigError
from .base import Stage
from .dpo import DPOStage
from .grpo import GRPOStage
from .kto import KTOStage
from .ppo import PPOStage
from .pt import PretrainStage
from .rm import RewardStage
from .sft import SupervisedStage

STAGES: dict[str, Stage] = {stage.name: stage for stage in (
    PretrainStage(), SupervisedStage(), RewardStage(), DPOStage(), KTOStage(), PPOStage(), GRPOStage())}


def get_stage(name: str) -> Stage:
    if name not in STAGES:
        raise ConfigError(f"stage `{name}` is not available; available: {', '.join(STAGES)}")
    return STAGES[name]
