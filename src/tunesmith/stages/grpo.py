"""Stage grpo: group relative policy optimisation with verifiable rewards (TRL's GRPO, its key names and
defaults). The data are prompts (data kind `prompt_reply`: sft-style rows; the dataset's reply is kept as the
`solution` the reward functions see). The loop (train/rl/grpo_loop.py) samples ``num_generations``
completions per prompt, scores them, turns the rewards into group-normalised advantages and calls this
stage's loss on every micro-batch of completions. The math is in stages/rl/grpo_math.py.

A micro-batch's completions of one prompt share one row when the run plan says so (shared-prompt rows,
stages/preference/shared_prompt.py): the prompt is computed once per group.
"""

from __future__ import annotations

import torch

from ..model.compat import accepts_logits_to_keep
from .base import LossContext, Stage
from .preference.shared_prompt import reply_token_logps, shared_forward
from .rl.batch import model_logprobs
from .rl.grpo_math import GRPOHyper, grpo_loss


def completion_logps(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, W) log-probs of the completion tokens of a micro-batch and their 0/1 mask, from shared-prompt rows
    (``batch["shared"]``) or one row per completion (``batch["rollout"]``, a RolloutBatch)."""
    width = batch["width"]
    if "shared" in batch:
        shared = batch["shared"]
        length = shared["input_ids"].shape[1]
        keep = length - max(int(shared["prompt_lengths"].min()) - 1, 0)
        extra = {"logits_to_keep": keep} if keep < length and accepts_logits_to_keep(model) else {}
        logits = shared_forward(model, shared, **extra).logits
        return reply_token_logps(logits, shared, width, offset=length - logits.shape[1])
    rollout = batch["rollout"]
    mask = (torch.arange(width, device=rollout.lengths.device)[None, :] < rollout.lengths[:, None]).float()
    return model_logprobs(model, rollout, width) * mask, mask


class GRPOLoss:
    """The clipped GRPO objective over one micro-batch of completions (``hyper.loss_type`` aggregation; the
    loop divides by the accumulation steps unless the loss type is dapo).

    ``batch``: ``shared`` or ``rollout`` (see completion_logps), ``width``; per completion ``advantages`` (N,),
    and per token ``old_logps`` (absent: the policy's own values, detached: one pass per generation batch),
    ``ref_logps`` (when beta != 0), ``loss_mask`` (0 for completions left out); ``window_tokens`` for dapo."""

    def __init__(self, hyper: GRPOHyper) -> None:
        self.hyper = hyper

    def __call__(self, ctx: LossContext, model, batch: dict):
        logps, mask = completion_logps(model, batch)
        mask = mask * batch["loss_mask"][:, None]
        old = batch.get("old_logps")
        loss, metrics = grpo_loss(logps, logps.detach() if old is None else old, batch.get("ref_logps"),
                                  batch["advantages"], mask, self.hyper, batch.get("window_tokens"))
        ctx.metrics.record(**{key: value.detach() for key, value in metrics.items()})
        return loss


class GRPOStage(Stage):
    name = "grpo"
    data_kind = "prompt_reply"
    loop = "grpo"
    shares_prompts = True

    def loss(self, cfg) -> GRPOLoss:
        return GRPOLoss(GRPOHyper.from_args(cfg.grpo))

    def needs_reference(self, cfg) -> bool:
        return cfg.grpo.beta != 0.0
