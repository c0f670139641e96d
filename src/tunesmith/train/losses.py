"""Loss terms as pure tensor functions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..types import IGNORE_INDEX
from .loss_variants import EAFT_SCALE, EAFT_TOP_K, LossVariant


def shift_labels(labels: torch.Tensor) -> torch.Tensor:
    """(B, T) labels -> (B, T) targets of each position: labels[:, t+1], IGNORE_INDEX at the end."""
    return F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)


def token_weight_correction(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
                            denominator: torch.Tensor | float) -> torch.Tensor:
    """Σ_t (w[y_t] - 1) · CE_t / denominator over trained positions whose weight is not 1.

    Added to the standard causal-LM loss (Σ_t CE_t / denominator), it gives the weighted loss
    Σ_t w[y_t] · CE_t / denominator. The denominator stays the count of trained tokens (unweighted), as
    in transformers, so every weight 1.0 gives exactly the standard loss (this term is exactly zero).

    logits: (B, T, V); labels: (B, T) unshifted with IGNORE_INDEX; weights: (V,) float.
    """
    targets = shift_labels(labels)
    trained = targets != IGNORE_INDEX
    w = torch.where(trained, weights.to(logits.device)[targets.clamp_min(0)], torch.ones_like(targets,
                                                                                             dtype=weights.dtype))
    pick = trained & (w != 1.0)
    if not bool(pick.any()):
        return logits.new_zeros(())
    ce = F.cross_entropy(logits[pick].float(), targets[pick], reduction="none")
    return ((w[pick] - 1.0) * ce).sum() / denominator


# ---- loss variants of the causal-LM loss (LLaMA-Factory's DFT, ASFT, EAFT; transformers' label smoothing) ----

def eaft_weight(logits: torch.Tensor, alpha: float) -> torch.Tensor:
    """(N, V) float32 logits -> (N,) (H_top20 / 3) ^ alpha, without gradient."""
    with torch.no_grad():
        top = logits.topk(min(EAFT_TOP_K, logits.shape[-1]), dim=-1).values
        logp = top - torch.logsumexp(top, dim=-1, keepdim=True)
        entropy = -(logp.exp() * logp).sum(-1)
        return (entropy / EAFT_SCALE).pow(alpha)


def variant_token_losses(logits: torch.Tensor, targets: torch.Tensor, variant: LossVariant,
                         ref_logits: torch.Tensor | None = None) -> torch.Tensor:
    """(N, V) logits of trained positions, (N,) targets -> (N,) per-token losses ℓ_t (float32 or wider)."""
    x = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    logp = F.log_softmax(x, dim=-1)
    ce = -logp.gather(1, targets[:, None]).squeeze(1)
    if variant.kind in ("dft", "asft"):
        loss = ce * torch.exp(-ce).detach()
    elif variant.kind == "eaft":
        loss = ce * eaft_weight(x, variant.alpha)
    else:
        loss = ce
    if variant.smoothing:
        loss = (1.0 - variant.smoothing) * loss - variant.smoothing * logp.mean(-1)
    if variant.kind == "asft":
        if ref_logits is None:
            raise ValueError("the asft loss needs the reference's logits")
        q_log = F.log_softmax(ref_logits.to(x.dtype), dim=-1)
        loss = loss + variant.alpha * (q_log.exp() * (q_log - logp)).sum(-1)
    return loss


def variant_causal_loss(logits: torch.Tensor, labels: torch.Tensor, variant: LossVariant,
                        denominator: torch.Tensor | float, token_weights: torch.Tensor | None = None,
                        ref_logits: torch.Tensor | None = None) -> torch.Tensor:
    """Σ_t w[y_t] · ℓ_t / denominator over the trained positions of (B, T, V) logits and (B, T) unshifted labels;
    ``ref_logits``: the reference's (B, T, V) logits (asft)."""
    targets = shift_labels(labels)
    trained = targets != IGNORE_INDEX
    if not bool(trained.any()):
        return logits.sum() * 0.0
    picked_ref = ref_logits[trained] if ref_logits is not None else None
    per_token = variant_token_losses(logits[trained], targets[trained], variant, picked_ref)
    if token_weights is not None:
        per_token = per_token * token_weights.to(per_token.device)[targets[trained]]
    return per_token.sum() / denominator
