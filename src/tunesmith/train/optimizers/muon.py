"""Muon (`use_muon`): PyTorch's torch.optim.Muon for the 2-D hidden weights (not embeddings, not the head), AdamW
for the rest, as LLaMA-Factory splits them. LLaMA-Factory's Muon scales each matrix's learning rate by
0.2 x sqrt(max(rows, cols)) (PyTorch's `adjust_lr_fn="match_rms_adamw"`), decays every weight by
`weight_decay` (decoupled) and uses momentum 0.95 with Nesterov and 5 Newton-Schulz steps; its AdamW part takes
the betas and epsilon of the config and the same weight decay."""

from __future__ import annotations

import logging

import torch

from .chained import ChainedOptimizer
from .groups import trainable

logger = logging.getLogger(__name__)


def is_muon_weight(name: str, param: torch.Tensor) -> bool:
    return param.ndim == 2 and "embed" not in name and "lm_head" not in name


def build_muon(model, args) -> torch.optim.Optimizer:
    params = trainable(model)
    hidden = [p for n, p in params if is_muon_weight(n, p)]
    others = [p for n, p in params if not is_muon_weight(n, p)]
    optimizers = []
    if hidden:
        optimizers.append(torch.optim.Muon(hidden, lr=args.learning_rate, weight_decay=args.weight_decay,
                                           momentum=0.95, nesterov=True, ns_steps=5,
                                           adjust_lr_fn="match_rms_adamw"))
    if others:
        optimizers.append(torch.optim.AdamW(others, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                            eps=args.adam_epsilon, weight_decay=args.weight_decay))
    logger.info("Muon for %d hidden weight matrices, AdamW for %d other weights", len(hidden), len(others))
    return ChainedOptimizer(optimizers)
