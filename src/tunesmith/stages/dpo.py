"""Stage dpo: direct preference optimisation on ranking data, with `pref_loss` sigmoid (DPO), hinge,
ipo, kto_pair (against a reference model) or orpo, simpo (reference-free).

Chosen and rejected go through one concatenated forward pass; the reference's log-probs come from a
second (no-grad) pass, or precomputed with the batch. Logged: rewards/chosen, rewards/rejected,
rewards/margins, rewards/accuracies, logps/chosen, logps/rejected (and sft_loss / odds_ratio_loss when
they apply).
"""

from __future__ import annotations

from .base import LossContext
from .preference.forward import pair_logps
from .preference.pairwise import PairwiseStage
from .preference.losses import REFERENCE_FREE, dpo_loss, orpo_loss, reply_nll, simpo_loss


class DPOLoss:
    def __init__(self, pref) -> None:
        self.kind = pref.pref_loss
        self.beta = pref.pref_beta
        self.ftx = pref.pref_ftx
        self.label_smoothing = pref.dpo_label_smoothing
        self.gamma = pref.simpo_gamma
        self.ld_alpha = pref.ld_alpha

    def policy_logps(self, model, inputs):
        return pair_logps(model, inputs, self.kind, self.ld_alpha)

    def reference_logps(self, ctx: LossContext, model, inputs):
        if "ref_logps" in inputs:
            return inputs["ref_logps"]
        return ctx.reference.run(model, lambda ref: self.policy_logps(ref, inputs)[0])

    def reference_fields(self, reference, model, inputs) -> dict:
        """Per-example reference values to store with the data (precompute_ref_log_probs)."""
        ref = reference.run(model, lambda m: self.policy_logps(m, inputs)[0]).float().cpu()
        half = ref.shape[0] // 2
        return {"ref_chosen_logps": ref[:half].tolist(), "ref_rejected_logps": ref[half:].tolist()}

    def __call__(self, ctx: LossContext, model, inputs):
        logps, _, logits, labels = self.policy_logps(model, inputs)
        half = logps.shape[0] // 2
        pc, pr = logps[:half], logps[half:]
        extra = {}
        if self.kind == "orpo":
            losses, chosen_r, rejected_r, ratio = orpo_loss(pc, pr, self.beta)
            extra["odds_ratio_loss"] = ratio
        elif self.kind == "simpo":
            losses, chosen_r, rejected_r = simpo_loss(pc, pr, self.beta, self.gamma)
        else:
            ref = self.reference_logps(ctx, model, inputs).to(logps.device)
            losses, chosen_r, rejected_r = dpo_loss(self.kind, pc, pr, ref[:half], ref[half:], self.beta,
                                                    self.label_smoothing)
        loss = losses.mean()
        if self.ftx > 0:
            sft = reply_nll(logits[:half], labels[:half], ctx.token_weights)
            loss = loss + self.ftx * sft.mean()
            extra["sft_loss"] = sft.detach()
        ctx.metrics.observe_tokens(logits[:half], labels[:half])
        ctx.metrics.record(**{"rewards/chosen": chosen_r, "rewards/rejected": rejected_r,
                          "rewards/margins": chosen_r - rejected_r,
                          "rewards/accuracies": (chosen_r > rejected_r).float(),
                          "logps/chosen": pc.detach(), "logps/rejected": pr.detach(), **extra})
        return loss


class DPOStage(PairwiseStage):
    name = "dpo"

    def loss(self, cfg) -> DPOLoss:
        return DPOLoss(cfg.preference)

    def needs_reference(self, cfg) -> bool:
        return cfg.preference.pref_loss not in REFERENCE_FREE
