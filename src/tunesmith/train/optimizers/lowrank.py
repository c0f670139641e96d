"""GaLore (galore-torch) and APOLLO (apollo-torch): the target linear weights get the low-rank optimizer
settings; every other trainable weight is optimised by the same class as plain AdamW (Adafactor / 8-bit AdamW for
GaLore), with weight decay by Trainer's rule. LLaMA-Factory's key meanings: `*_target` names linear modules (`all`:
every linear layer but the head), `*_update_interval` is the projection's `update_proj_gap`."""

from __future__ import annotations

import logging

import torch

from .groups import base_kwargs, decay_split, linear_targets, without_groups
from .layerwise import layerwise

logger = logging.getLogger(__name__)

GALORE_CLASSES = {"adamw_torch": "GaLoreAdamW", "adamw_torch_fused": "GaLoreAdamW", "adamw_bnb_8bit": "GaLoreAdamW8bit",
                  "adamw_8bit": "GaLoreAdamW8bit", "paged_adamw_8bit": "GaLoreAdamW8bit",
                  "adafactor": "GaLoreAdafactor"}
DROPPED = ("fused", "foreach", "optim_bits", "is_paged")  # Trainer's AdamW / bitsandbytes switches


def galore_settings(ft) -> dict:
    return {"rank": ft.galore_rank, "update_proj_gap": ft.galore_update_interval, "scale": ft.galore_scale,
            "proj_type": ft.galore_proj_type}


def apollo_settings(ft) -> dict:
    return {"rank": ft.apollo_rank, "proj": ft.apollo_proj, "proj_type": ft.apollo_proj_type,
            "update_proj_gap": ft.apollo_update_interval, "scale": ft.apollo_scale,
            "scale_type": ft.apollo_scale_type, "scale_front": ft.apollo_scale_front}


def build_low_rank(model, args, ft, family: str) -> torch.optim.Optimizer:
    """``family``: galore or apollo."""
    from ...config.errors import ConfigError

    from transformers.training_args import OptimizerNames

    optim = OptimizerNames(args.optim).value
    if family == "galore":
        import galore_torch

        cls = getattr(galore_torch, GALORE_CLASSES[optim])  # noqa: B009 - a name from the table above
        targets, settings, is_layerwise = ft.galore_target, galore_settings(ft), ft.galore_layerwise
    else:
        from apollo_torch import APOLLOAdamW

        cls, targets, settings, is_layerwise = APOLLOAdamW, ft.apollo_target, apollo_settings(ft), ft.apollo_layerwise
    name = "GaLore" if family == "galore" else "APOLLO"
    checkpointable_projectors()
    projected = linear_targets(model, targets)
    if not projected:
        raise ConfigError(f"`{family}_target: {','.join(targets)}` matches no trainable linear weight of the model")
    decay, nodecay = decay_split(model, exclude={id(p) for p in projected})
    _, kwargs = base_kwargs(args)
    kwargs = {k: v for k, v in kwargs.items() if k not in DROPPED}
    groups = without_groups([{"params": nodecay, "weight_decay": 0.0},
                             {"params": decay, "weight_decay": args.weight_decay},
                             {"params": projected, "weight_decay": args.weight_decay, **settings}])
    logger.info("%s on %d linear weights (%s), %s for %d others", name, len(projected), settings, cls.__name__,
                len(decay) + len(nodecay))
    if is_layerwise:
        if args.world_size > 1:
            raise ConfigError(f"layer-wise {name} steps each weight inside backward, before gradients are averaged "
                              f"across the {args.world_size} processes; set `{family}_layerwise: false` for "
                              "distributed training")
        return layerwise(groups, cls, kwargs, args.learning_rate, name, args.max_grad_norm)
    return cls(groups, **kwargs)


def checkpointable_projectors() -> None:
    """The projectors in GaLore's and APOLLO's optimizer state are plain objects (ints, floats, strings and a
    tensor); Trainer reloads a checkpoint's optimizer state with torch.load(weights_only=True), which refuses
    any class it was not told is safe: without this a resumed GaLore or APOLLO run fails."""
    import importlib

    for module, names in (("galore_torch.galore_projector", ("GaLoreProjector",)),
                          ("apollo_torch.random_projector", ("GradientProjector",)),
                          ("apollo_torch.svd_projector", ("GaLoreProjector",))):
        try:
            found = importlib.import_module(module)
        except ImportError:  # the other family's package is not installed
            continue
        torch.serialization.add_safe_globals([vars(found)[name] for name in names])
