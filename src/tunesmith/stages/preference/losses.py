"""Preference losses as pure tensor functions (per example; the caller averages).

Notation: ``pc``/``pr`` are the policy's log-probabilities of the chosen/rejected replies, ``rc``/``rr`` the
reference's; sums over reply tokens unless said otherwise (ipo, orpo and simpo use per-token averages, as
in their papers and in LLaMA-Factory). Each function returns (losses, chosen_rewards, rejected_rewards);
rewards are detached and are what gets logged as rewards/chosen and rewards/rejected.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...types import IGNORE_INDEX

REFERENCE_FREE = ("orpo", "simpo")
AVERAGED = ("ipo", "orpo", "simpo")


def token_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of every label under next-token logits: (B, T-1) values (0 where not trained) and
    the (B, T-1) bool mask of trained positions. ``labels`` are unshifted, IGNORE_INDEX where not trained.
    Uses logit - logsumexp, so no (B, T, V) log-softmax tensor is materialised."""
    logits, targets = logits[:, :-1], labels[:, 1:]
    mask = targets != IGNORE_INDEX
    safe = targets.clamp_min(0)
    picked = torch.gather(logits, 2, safe.unsqueeze(-1)).squeeze(-1).float()
    logps = picked - torch.logsumexp(logits.float(), dim=-1)
    return logps * mask, mask


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor, ld_alpha: float | None = None,
                   pair_lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) summed reply log-probs and (B,) reply lengths.

    LD-DPO (``ld_alpha``): tokens beyond ``pair_lengths`` (the shorter reply's length of each pair) count
    with weight ``ld_alpha``, so the longer reply gains nothing from its extra tokens alone.
    """
    logps, mask = token_logps(logits, labels)
    lengths = mask.sum(-1)
    if ld_alpha is None or pair_lengths is None:
        return logps.sum(-1), lengths
    rank = mask.cumsum(-1)  # 1-based position of each reply token within the reply
    weight = torch.where(rank <= pair_lengths.unsqueeze(-1), 1.0, ld_alpha) * mask
    return (logps * weight).sum(-1), lengths


def dpo_loss(kind: str, pc: torch.Tensor, pr: torch.Tensor, rc: torch.Tensor, rr: torch.Tensor, beta: float,
             label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """sigmoid (DPO, with conservative label smoothing), hinge (RSO), ipo, kto_pair."""
    chosen_ratio, rejected_ratio = pc - rc, pr - rr
    logits = chosen_ratio - rejected_ratio
    if kind == "sigmoid":
        losses = (-F.logsigmoid(beta * logits) * (1 - label_smoothing)
                  - F.logsigmoid(-beta * logits) * label_smoothing)
    elif kind == "hinge":
        losses = torch.relu(1 - beta * logits)
    elif kind == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    elif kind == "kto_pair":
        # each half's KL baseline is estimated from the other half of the batch (the KTO paper's pairing)
        chosen_kl = chosen_ratio.mean().clamp(min=0).detach()
        rejected_kl = rejected_ratio.mean().clamp(min=0).detach()
        losses = torch.cat((1 - torch.sigmoid(beta * (chosen_ratio - rejected_kl)),
                            1 - torch.sigmoid(beta * (chosen_kl - rejected_ratio))))
    else:
        raise ValueError(f"unknown DPO loss {kind!r}")
    return losses, (beta * chosen_ratio).detach(), (beta * rejected_ratio).detach()


def orpo_loss(pc_avg: torch.Tensor, pr_avg: torch.Tensor, beta: float
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """ORPO: NLL of the chosen reply + beta * -log sigmoid(log odds ratio); per-token average log-probs.
    Also returns the odds-ratio term alone for logging."""
    log_odds = (pc_avg - pr_avg) - (torch.log1p(-torch.exp(pc_avg)) - torch.log1p(-torch.exp(pr_avg)))
    ratio_loss = -F.logsigmoid(log_odds)
    losses = -pc_avg + beta * ratio_loss
    return losses, (beta * pc_avg).detach(), (beta * pr_avg).detach(), ratio_loss.detach()


def simpo_loss(pc_avg: torch.Tensor, pr_avg: torch.Tensor, beta: float, gamma: float
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SimPO: -log sigmoid(beta * (avg_c - avg_r) - gamma); per-token average log-probs, no reference."""
    losses = -F.logsigmoid(beta * (pc_avg - pr_avg) - gamma)
    return losses, (beta * pc_avg).detach(), (beta * pr_avg).detach()


def kto_loss(pc: torch.Tensor, pr: torch.Tensor, p_kl: torch.Tensor, rc: torch.Tensor, rr: torch.Tensor,
             r_kl: torch.Tensor, beta: float, desirable_weight: float = 1.0, undesirable_weight: float = 1.0
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """KTO: desirable replies are pushed above, undesirable below, the KL baseline z0 = E[log pi/ref] over
    mismatched completions (clamped at 0, no gradient). Returns (losses, chosen_rewards, rejected_rewards, z0)."""
    z0 = (p_kl - r_kl).mean().clamp(min=0).detach()
    chosen_ratio, rejected_ratio = pc - rc, pr - rr
    losses = torch.cat((desirable_weight * (1 - torch.sigmoid(beta * (chosen_ratio - z0))),
                        undesirable_weight * (1 - torch.sigmoid(beta * (z0 - rejected_ratio)))))
    return losses, (beta * chosen_ratio).detach(), (beta * rejected_ratio).detach(), z0


def pairwise_reward_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Bradley-Terry: -log sigmoid(r_chosen - r_rejected), per pair."""
    return -F.logsigmoid(chosen.float() - rejected.float())


def reply_nll(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) mean negative log-likelihood per reply token (the SFT term of pref_ftx); with per-token-id
    ``weights`` (V,), Σ w·NLL / n_tokens (weights 1 give the plain mean)."""
    logps, mask = token_logps(logits, labels)
    if weights is not None:
        w = weights.to(logps.device)[labels[:, 1:].clamp_min(0)] * mask
        logps = logps * w
    return -logps.sum(-1) / mask.sum(-1).clamp_min(1)
