"""Vision-language models: which parts a model type has (vision tower, projector, language model) and what the
freeze_* switches keep frozen, with LLaMA-Factory's module keys for each family. Families join through
COMPOSITE (one entry each); a model type that is not listed trains as a text model."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ..config.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Parts:
    """A vision-language model type: its processing family (the media plugin and video processing it takes), the
    templates that suit it, and substrings of its parameter / module names, as LLaMA-Factory keys them."""

    family: str  # data/media/plugin.py and model/qwen_video.py: qwen2_vl | qwen3_vl
    templates: str  # named when a text-only template is given
    vision: tuple[str, ...]
    projector: tuple[str, ...]
    language: tuple[str, ...] = ("language_model", "lm_head")
    lora_conflict: tuple[str, ...] = ("patch_embed",)  # never given LoRA (a Conv3d)


# Qwen2.5-VL processes media as Qwen2-VL does (and also returns the seconds per temporal patch)
_QWEN2 = Parts(family="qwen2_vl", templates="qwen2_vl", vision=("visual.patch_embed", "visual.blocks"),
               projector=("visual.merger",))
_QWEN3 = Parts(family="qwen3_vl", templates="qwen3_vl / qwen3_vl_nothink",
               vision=("visual.pos_embed", "visual.patch_embed", "visual.blocks", "visual.deepstack_merger_list"),
               projector=("visual.merger",))
COMPOSITE: dict[str, Parts] = {"qwen2_vl": _QWEN2, "qwen2_5_vl": _QWEN2, "qwen3_vl": _QWEN3}


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: cannot be read as JSON ({err})") from None


def model_type(path: str | Path) -> str | None:
    """The checkpoint's `model_type` (config.json), or None where there is no config.json."""
    config = Path(path) / "config.json"
    return read_json(config).get("model_type") if config.is_file() else None


def is_vision_language(path: str | Path) -> bool:
    """The checkpoint at ``path`` is a vision-language model tunesmith trains with its media."""
    return model_type(path) in COMPOSITE


def parts_of(model) -> Parts | None:
    return COMPOSITE.get(getattr(model.config, "model_type", None))


def frozen_keys(parts: Parts, media) -> set[str]:
    """What the freeze_* switches (MediaArgs) keep out of training."""
    keys: set[str] = set()
    if media.freeze_vision_tower:
        keys.update(parts.vision)
    if media.freeze_multi_modal_projector:
        keys.update(parts.projector)
    if media.freeze_language_model:
        keys.update(parts.language)
    return keys


def freeze_parts(model, media) -> list[str]:
    """full / freeze on a vision-language model: the parts the switches name stop training. Returns the frozen
    parameter names."""
    parts = parts_of(model)
    if parts is None:
        return []
    keys = frozen_keys(parts, media)
    frozen = []
    for name, param in model.named_parameters():
        if param.requires_grad and any(key in name for key in keys):
            param.requires_grad_(False)
            frozen.append(name)
    if keys:
        logger.info("vision-language model: %s stay frozen (freeze_vision_tower=%s, freeze_multi_modal_projector=%s,"
                    " freeze_language_model=%s)", ", ".join(sorted(keys)), media.freeze_vision_tower,
                    media.freeze_multi_modal_projector, media.freeze_language_model)
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError("nothing trains: freeze_vision_tower, freeze_multi_modal_projector and "
                          "freeze_language_model together freeze every part the method would train")
    return frozen


def lora_module_names(model, names: list[str], media) -> list[str] | None:
    """LoRA targets on a vision-language model: the full names of the linear modules whose names contain a target,
    outside the frozen parts, the projector (`lora_target: all` never adapts it, as in LLaMA-Factory) and the
    patch embedding. None for a text model (peft matches ``names`` itself)."""
    import torch

    parts = parts_of(model)
    if parts is None:
        return None
    blocked = frozen_keys(parts, media) | set(parts.lora_conflict)
    out = []
    for full, module in model.named_modules():
        # a target matches every module whose name contains it, as in LLaMA-Factory ("q_proj", or a full name)
        if not any(name in full for name in names) or any(key in full for key in blocked):
            continue
        if isinstance(module, torch.nn.Linear) or type(module).__name__.startswith(("Linear", "Linear4bit")):
            out.append(full)
    if not out:
        raise ConfigError(f"`lora_target` ({', '.join(names)}): no module of {type(model).__name__} matches outside "
                          f"the frozen parts ({', '.join(sorted(blocked))}); set freeze_vision_tower: false to "
                          "adapt the vision tower")
    return out


def all_target_exclusions(model, media) -> set[str] | None:
    """`lora_target: all` on a vision-language model leaves out the projector, and the vision tower while it is
    frozen (LLaMA-Factory's rule): their keys. None for a text model."""
    parts = parts_of(model)
    if parts is None:
        return None
    return set(parts.projector) | (set(parts.vision) if media.freeze_vision_tower else set())
