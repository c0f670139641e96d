"""LoRA+ (`loraplus_lr_ratio`): LoRA's B matrices (and trainable 1-D weights) learn at ratio x learning_rate, B
matrices of LoRA embeddings at `loraplus_lr_embedding`, everything else at learning_rate; weight decay by
Trainer's rule, B matrices without it where the rule says so. The groups are LLaMA-Factory's."""

from __future__ import annotations

import logging

import torch

from .groups import base_kwargs, trainable, without_groups

logger = logging.getLogger(__name__)


def build_loraplus(model, args, ft) -> torch.optim.Optimizer:
    from ...model.compat import decay_parameter_names

    decay = set(decay_parameter_names(model))
    lr, ratio_lr = args.learning_rate, args.learning_rate * ft.loraplus_lr_ratio
    groups: dict[str, list] = {"lora_a": [], "lora_b": [], "lora_b_nodecay": [], "embedding": []}
    for name, param in trainable(model):
        if "lora_embedding_B" in name:
            groups["embedding"].append(param)
        elif "lora_B" in name or param.ndim == 1:
            groups["lora_b" if name in decay else "lora_b_nodecay"].append(param)
        else:
            groups["lora_a"].append(param)
    cls, kwargs = base_kwargs(args)
    optimizer = cls(without_groups([
        {"params": groups["lora_a"], "lr": lr, "weight_decay": args.weight_decay},
        {"params": groups["lora_b"], "lr": ratio_lr, "weight_decay": args.weight_decay},
        {"params": groups["lora_b_nodecay"], "lr": ratio_lr, "weight_decay": 0.0},
        {"params": groups["embedding"], "lr": ft.loraplus_lr_embedding, "weight_decay": args.weight_decay},
    ]), **kwargs)
    logger.info("LoRA+: B matrices at %g (ratio %g), A matrices at %g, %d embedding B matrices at %g", ratio_lr,
                ft.loraplus_lr_ratio, lr, len(groups["embedding"]), ft.loraplus_lr_embedding)
    return optimizer
