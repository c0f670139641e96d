"""BAdam (the badam package): block coordinate descent. `badam_mode: layer` trains one decoder layer at a time
and switches every `badam_switch_interval` optimizer steps in `badam_switch_mode` order (BlockOptimizer, which
keeps a float32 copy of the active block only); `ratio` updates a `badam_update_ratio` share of every weight
(BlockOptimizerRatio). Neither ever trains the embeddings or the head (LLaMA-Factory's settings): their rows stay
bit-identical, so BAdam agrees with any row gate (a config rule refuses added tokens, which would never train);
a model whose head is tied to the embedding has no head of its own to freeze."""

from __future__ import annotations

import logging

import torch

from .groups import base_kwargs, decay_split

logger = logging.getLogger(__name__)
NEVER = 2**62  # badam_switch_interval -1: never switch (BlockOptimizer would read -1 as "every step")


def build_badam(model, args, ft, accelerator=None) -> torch.optim.Optimizer:
    from transformers.integrations import is_deepspeed_zero3_enabled

    from ...config.errors import ConfigError

    if args.world_size > 1 and (ft.badam_mode == "ratio" or not is_deepspeed_zero3_enabled()):
        raise ConfigError("ratio-based BAdam does not support distributed training; use `badam_mode: layer` with a "
                          "DeepSpeed ZeRO-3 config" if ft.badam_mode == "ratio" else "layer-wise BAdam trains on "
                          "several processes only under DeepSpeed ZeRO-3 (`deepspeed: ds_z3_config.json`)")
    decay, nodecay = decay_split(model)
    cls, kwargs = base_kwargs(args)
    groups = [{"params": nodecay, "weight_decay": 0.0}, {"params": decay, "weight_decay": args.weight_decay}]
    named = list(model.named_parameters())
    if ft.badam_mode == "layer":
        from badam import BlockOptimizer

        # BlockOptimizer gives the active block the weight decay of the first group (and exempts biases): with
        # LLaMA-Factory's order (no-decay group first) no weight would ever decay, so the decayed group goes first
        groups = groups[::-1]

        interval = ft.badam_switch_interval if ft.badam_switch_interval not in (None, -1) else (
            NEVER if ft.badam_switch_interval == -1 else 50)
        optimizer = BlockOptimizer(base_optimizer=cls(groups, **kwargs), named_parameters_list=named,
                                   block_prefix_list=None, switch_block_every=interval,
                                   start_block=ft.badam_start_block, switch_mode=ft.badam_switch_mode or "ascending",
                                   verbose=ft.badam_verbose)
        # BlockOptimizer counts the steps from 1 when it checks for a switch, so its first block would train one
        # step fewer than badam_switch_interval: counting from 0 gives every block the interval
        optimizer.global_step = -1
        checkpointed_blocks(optimizer)
        logger.info("BAdam layer-wise: %d blocks, %s, switching every %s steps, first block %d",
                    optimizer.block_num, ft.badam_switch_mode, "never" if interval == NEVER else interval,
                    optimizer.current_block_idx)
        return optimizer
    from badam import BlockOptimizerRatio

    kwargs = {k: v for k, v in kwargs.items() if k not in ("fused", "foreach")}
    optimizer = BlockOptimizerRatio(param_groups=groups, named_parameters_list=named,
                                    update_ratio=ft.badam_update_ratio, mask_mode=ft.badam_mask_mode,
                                    verbose=ft.badam_verbose, include_embedding=False,
                                    include_lm_head=all("lm_head" not in n for n, _ in named), **kwargs)
    if accelerator is not None:  # its gradients are sparse: torch's clip_grad_norm_ cannot take their norm
        from types import MethodType

        from badam import clip_grad_norm_old_version

        accelerator.clip_grad_norm_ = MethodType(clip_grad_norm_old_version, accelerator)
    logger.info("BAdam ratio-based: update ratio %g, %s mask", ft.badam_update_ratio, ft.badam_mask_mode)
    return optimizer


def checkpointed_blocks(optimizer) -> None:
    """A checkpoint of BlockOptimizer holds only its base optimizer's state, which belongs to the block active
    when it was saved: save the block, the step count and the learning rate with it, and on loading switch to that block first, so
    a resumed run continues the block schedule where it stopped (instead of restarting at the first block with
    another block's Adam state)."""
    base = optimizer.base_optimizer

    def state_dict() -> dict:
        return {"base": base.state_dict(), "active_block": active_block(optimizer),
                "global_step": optimizer.global_step, "lr": [group["lr"] for group in optimizer.param_groups]}

    def load_state_dict(state: dict) -> None:
        optimizer.current_block_idx = state["active_block"]
        optimizer.switch_trainable_params(verbose=0)  # makes it active, then points at the next one
        optimizer.global_step = state["global_step"]
        base.load_state_dict(state["base"])
        for group, lr in zip(optimizer.param_groups, state["lr"], strict=True):  # the schedule's current value,
            group["lr"] = lr  # which BlockOptimizer hands to its base optimizer at each step

    optimizer.state_dict = state_dict
    optimizer.load_state_dict = load_state_dict


def active_block(optimizer) -> int:
    """Index of the block that trains now (BlockOptimizer keeps the index of the next one)."""
    prefixes = optimizer.active_param_prefixs
    return optimizer.block_prefix_list.index(prefixes[:len(prefixes) - len(optimizer.active_modules)])
