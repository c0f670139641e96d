"""Loss terms as pure tensor functions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..types import IGNORE_INDEX


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
