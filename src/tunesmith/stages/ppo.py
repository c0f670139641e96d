"""Stage ppo: proximal policy optimisation from a reward. The data are prompts (data kind `prompt`: sft-style
rows whose replies are ignored); the policy writes the replies during training, in the rollout loop
(train/rl/ppo_loop.py: generation, rewards, reference log-probs, advantages), which calls this stage's loss
on every minibatch of rollouts. The math is in stages/rl/losses.py, checked against hand computations.
"""

from __future__ import annotations

from .base import LossContext, Stage
from .rl.batch import policy_outputs
from .rl.losses import PPOHyper, policy_loss, value_loss


class PPOLoss:
    """Clipped surrogate policy loss + ``vf_coef`` x clipped value loss over one minibatch of rollouts.

    ``batch``: ``rollout`` (a RolloutBatch on the model's device), ``width`` (reply positions), and per reply
    token the rollout's ``logps``, ``values``, ``advantages``, ``returns`` and ``mask``. ``model`` is the
    policy with its value head (stages/rl/batch.py PolicyWithValue, possibly wrapped)."""

    def __init__(self, hyper: PPOHyper) -> None:
        self.hyper = hyper

    def __call__(self, ctx: LossContext, model, batch: dict):
        logps, values = policy_outputs(model, batch["rollout"], batch["width"])
        pg, clip = policy_loss(logps.float(), batch["logps"], batch["advantages"], batch["mask"],
                               self.hyper.cliprange)
        vf, vclip = value_loss(values.float(), batch["values"], batch["returns"], batch["mask"],
                               self.hyper.cliprange_value)
        loss = pg + self.hyper.vf_coef * vf
        ctx.metrics.record(policy_loss=pg.detach(), value_loss=vf.detach(), clip_fraction=clip,
                           value_clip_fraction=vclip)
        return loss


class PPOStage(Stage):
    name = "ppo"
    data_kind = "prompt"
    loop = "rollout"

    def loss(self, cfg) -> PPOLoss:
        return PPOLoss(PPOHyper())

    def needs_reference(self, cfg) -> bool:
        return True
