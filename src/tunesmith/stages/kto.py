"""Stage kto: Kahneman-Tversky optimisation on single replies tagged desirable or not (`kto_tag`).

Each example also carries its prompt paired with the previous example's reply (formed once, when the data
is encoded, as LLaMA-Factory does: data/encode_preference.py); the policy-vs-reference log-ratio on those
mismatched pairs (no gradient) is KTO's KL baseline z0. z0 is the mean over the micro-batches of every process
(as TRL's KTOTrainer gathers it), so two processes with half the micro-batch each compute the one-process z0
and the same loss. Logged: rewards/chosen, rewards/rejected, rewards/margins, logps/chosen, logps/rejected, kl.
"""

from __future__ import annotations

import torch

from ..data.collate import FeedbackCollator
from .base import LossContext, Stage
from .preference.forward import logps_of
from .preference.losses import kto_loss, reply_nll


def mean_over_processes(values: torch.Tensor) -> torch.Tensor:
    """The mean of ``values`` (no gradient) over this micro-batch and those of the other processes of the run
    (sum and count all-reduced in the group torchrun / accelerate set up); the plain mean on one process."""
    import torch.distributed as dist

    values = values.detach().float()
    totals = torch.stack([values.sum(), torch.tensor(float(values.numel()), device=values.device)])
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(totals)
    return totals[0] / totals[1]


class KTOLoss:
    def __init__(self, pref) -> None:
        self.beta = pref.pref_beta
        self.ftx = pref.pref_ftx
        self.weights = (pref.kto_chosen_weight, pref.kto_rejected_weight)

    @staticmethod
    def _logps(model, inputs, prefix=""):
        return logps_of(model, inputs[f"{prefix}input_ids"], inputs[f"{prefix}attention_mask"],
                        inputs[f"{prefix}labels"], "sigmoid", paired=False)

    def reference_fields(self, reference, model, inputs) -> dict:
        ref, ref_kl = reference.run(model, lambda m: (self._logps(m, inputs)[0], self._logps(m, inputs, "kl_")[0]))
        return {"ref_logps": ref.float().cpu().tolist(), "ref_kl_logps": ref_kl.float().cpu().tolist()}

    def __call__(self, ctx: LossContext, model, inputs):
        logps, _, logits, labels = self._logps(model, inputs)
        with torch.no_grad():
            kl_logps = self._logps(model, inputs, "kl_")[0]
        if "ref_logps" in inputs:
            ref, ref_kl = inputs["ref_logps"].to(logps.device), inputs["ref_kl_logps"].to(logps.device)
        else:
            ref, ref_kl = ctx.reference.run(model, lambda m: (self._logps(m, inputs)[0],
                                                                   self._logps(m, inputs, "kl_")[0]))
        tags = inputs["kto_tags"].to(logps.device)
        # z0 over every process: the mean log-ratio of all mismatched pairs, handed to kto_loss as one pair
        kl_mean = mean_over_processes(kl_logps - ref_kl).reshape(1)
        losses, chosen_r, rejected_r, kl = kto_loss(logps[tags], logps[~tags], kl_mean, ref[tags], ref[~tags],
                                                    torch.zeros_like(kl_mean), self.beta, *self.weights)
        loss = losses.mean()
        extra = {}
        if self.ftx > 0:
            sft = reply_nll(logits[tags], labels[tags], ctx.token_weights)
            loss = loss + self.ftx * sft.sum() / tags.numel()  # desirable replies' NLL, averaged over the batch
            extra["sft_loss"] = sft.detach()
        ctx.metrics.observe_tokens(logits[tags], labels[tags])
        ctx.metrics.record(**{"rewards/chosen": chosen_r, "rewards/rejected": rejected_r,
                          "logps/chosen": logps[tags].detach(), "logps/rejected": logps[~tags].detach(),
                          "kl": kl.reshape(1), **extra})
        return loss


class KTOStage(Stage):
    name = "kto"
    data_kind = "feedback"

    def collator(self, pad_token_id: int) -> FeedbackCollator:
        return FeedbackCollator(pad_token_id)

    def loss(self, cfg) -> KTOLoss:
        return KTOLoss(cfg.preference)

    def needs_reference(self, cfg) -> bool:
        return True
