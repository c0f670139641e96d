"""Stage rm: a reward model: the causal LM's body with a one-output `score` head (a transformers
*ForSequenceClassification model), trained on ranking pairs with the Bradley-Terry loss
-log σ(r_chosen - r_rejected). The score of a text is the head's output at its last token.

Saved as a standard sequence-classification checkpoint (full/freeze) or a peft adapter that carries the
head (lora), so it reloads in plain transformers; tunesmith.json records `model_head: score`. A trained reward model is reloaded and used for scoring by
train/rl/reward_model.py.
Logged: rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies (train and eval).
"""

from __future__ import annotations

from .base import LossContext
from .preference.forward import pair_scores
from .preference.pairwise import PairwiseStage
from .preference.losses import pairwise_reward_loss


class RewardLoss:
    def __call__(self, ctx: LossContext, model, inputs):
        scores = pair_scores(model, inputs)
        half = scores.shape[0] // 2
        chosen, rejected = scores[:half], scores[half:]
        loss = pairwise_reward_loss(chosen, rejected).mean()
        c, r = chosen.detach(), rejected.detach()
        ctx.metrics.record(**{"rewards/chosen": c, "rewards/rejected": r, "rewards/margins": c - r,
                          "rewards/accuracies": (c > r).float()})
        return loss


class RewardStage(PairwiseStage):
    name = "rm"
    model_head = "score"

    def loss(self, cfg) -> RewardLoss:
        return RewardLoss()

