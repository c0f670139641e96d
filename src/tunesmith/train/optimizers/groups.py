"""Parameter groups the optimizer families share: weight decay by Trainer's rule (not norms, not biases), and the
linear weights a low-rank optimizer (GaLore, APOLLO) targets, chosen as LLaMA-Factory chooses them."""

from __future__ import annotations

import torch


def trainable(model) -> list[tuple[str, torch.nn.Parameter]]:
    return [(name, param) for name, param in model.named_parameters() if param.requires_grad]


def decay_split(model, exclude: set[int] = frozenset()) -> tuple[list, list]:
    """(decayed, not decayed) trainable parameters, leaving out those whose id is in ``exclude``."""
    from ...model.compat import decay_parameter_names

    decay = set(decay_parameter_names(model))
    params = [(n, p) for n, p in trainable(model) if id(p) not in exclude]
    return [p for n, p in params if n in decay], [p for n, p in params if n not in decay]


def linear_targets(model, targets: tuple[str, ...]) -> list[torch.nn.Parameter]:
    """Trainable matrices of the linear modules whose name contains one of ``targets`` (`all`: the names of every
    linear layer but the output head), as LLaMA-Factory's GaLore and APOLLO select them."""
    from ...model.methods import lora_target_modules

    names = lora_target_modules(transformers_model(model), tuple(targets))
    found: list[torch.nn.Parameter] = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and any(target in name for target in names):
            found += [p for p in module.parameters() if p.requires_grad and p.ndim > 1 and
                      all(p is not q for q in found)]
    return found


def transformers_model(model):
    """The transformers model inside ``model`` (the rollout loops train a policy with a value head around it)."""
    from transformers import PreTrainedModel

    return next(m for m in model.modules() if isinstance(m, PreTrainedModel))


def base_kwargs(args) -> tuple[type, dict]:
    """The optimizer class and keyword arguments of `optim` as Trainer builds them (learning rate, betas,
    epsilon, `optim_args`)."""
    from transformers import Trainer

    return Trainer.get_optimizer_cls_and_kwargs(args)


def without_groups(groups: list[dict]) -> list[dict]:
    """Parameter groups that hold parameters (empty ones dropped)."""
    return [group for group in groups if group["params"]]
