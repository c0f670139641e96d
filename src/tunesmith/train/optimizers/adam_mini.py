"""Adam-mini (the adam-mini package): one second-moment value per parameter block (attention heads, neurons),
told the model's hidden size and head counts, as LLaMA-Factory builds it."""

from __future__ import annotations

import logging

import torch

from .groups import transformers_model

logger = logging.getLogger(__name__)


def build_adam_mini(model, args) -> torch.optim.Optimizer:
    from adam_mini import Adam_mini
    from transformers.integrations import is_deepspeed_zero3_enabled

    config = transformers_model(model).config.to_dict()
    heads = config.get("num_attention_heads")
    optimizer = Adam_mini(named_parameters=[(n, p) for n, p in model.named_parameters() if p.requires_grad],
                          lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon,
                          weight_decay=args.weight_decay,
                          model_sharding=bool(args.fsdp) or is_deepspeed_zero3_enabled(),
                          dim=config.get("hidden_size"), n_heads=heads,
                          n_kv_heads=config.get("num_key_value_heads") or heads, verbose=False)
    logger.info("Adam-mini optimizer")
    return optimizer
