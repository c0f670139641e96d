"""Forward passes of the preference stages: log-probabilities of replies, and reward-model scores."""

from __future__ import annotations

import torch

from ...model.compat import accepts_logits_to_keep, peft_base
from ...types import IGNORE_INDEX, media_inputs
from .losses import AVERAGED, sequence_logps
from .shared_prompt import last_positions, reply_logits_and_labels, reply_token_logps, shared_forward


def reply_lengths(labels: torch.Tensor) -> torch.Tensor:
    return (labels[:, 1:] != IGNORE_INDEX).sum(-1)


def pair_min_lengths(labels: torch.Tensor) -> torch.Tensor:
    """For a [chosen; rejected] batch of 2B rows: each pair's shorter reply length, for both rows."""
    lengths = reply_lengths(labels)
    half = lengths.shape[0] // 2
    shorter = torch.minimum(lengths[:half], lengths[half:])
    return torch.cat((shorter, shorter))


def reply_window(labels: torch.Tensor) -> int:
    """How many positions at the end of the rows the log-probs need: from the position before the earliest
    trained label of the batch (it predicts that label) to the end."""
    trained = labels != IGNORE_INDEX
    if not bool(trained.any()):
        return labels.shape[1]
    first = int(trained.int().argmax(-1)[trained.any(-1)].min())
    return labels.shape[1] - max(first - 1, 0)


def logps_of(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor, loss_kind: str,
             ld_alpha: float | None = None, paired: bool = True, media: dict | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward pass: (per-row reply log-prob, reply lengths, logits, the labels those logits cover).
    Averaged per token for ipo, orpo and simpo; LD-DPO weighting for pairs when ``ld_alpha`` is set.

    Logits are computed only from the position before the batch's earliest reply token onwards
    (``logits_to_keep``): prompt positions never need the vocabulary projection, which saves its compute
    and the memory of a (rows, prompt length, vocabulary) tensor. The log-probs are the same. ``media``: the
    batch's vision inputs (pixel values and grids), passed to the forward pass."""
    extra = dict(media or {})
    keep = reply_window(labels)
    if keep < labels.shape[1] and accepts_logits_to_keep(model):
        extra["logits_to_keep"] = keep
    else:
        keep = labels.shape[1]
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **extra).logits
    labels = labels[:, labels.shape[1] - keep:]
    pair_lengths = pair_min_lengths(labels) if (paired and ld_alpha is not None) else None
    logps, lengths = sequence_logps(logits, labels, ld_alpha, pair_lengths)
    if loss_kind in AVERAGED:
        logps = logps / lengths.clamp_min(1)
    return logps, lengths, logits, labels


def pair_logps(model, inputs: dict, loss_kind: str, ld_alpha: float | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``logps_of`` for a pair batch in either layout: 2B separate rows, or B shared-prompt rows (then the
    logits and labels returned are the chosen replies', laid out as rows of their own)."""
    if "segment_ids" not in inputs:
        return logps_of(model, inputs["input_ids"], inputs["attention_mask"], inputs["labels"], loss_kind, ld_alpha,
                        media=media_inputs(inputs))
    length = inputs["input_ids"].shape[1]
    keep = length - max(int(inputs["prompt_lengths"].min()) - 1, 0)
    extra = {"logits_to_keep": keep} if keep < length and accepts_logits_to_keep(model) else {}
    logits = shared_forward(model, inputs, **extra).logits
    offset = length - logits.shape[1]
    token_logps, mask = reply_token_logps(logits, inputs, offset=offset)
    lengths = mask.sum(-1).long()
    half = lengths.shape[0] // 2
    if ld_alpha is not None:  # LD-DPO, as sequence_logps: tokens beyond the shorter reply weigh ld_alpha
        shorter = torch.minimum(lengths[:half], lengths[half:])
        rank = mask.cumsum(-1)
        mask = torch.where(rank <= torch.cat((shorter, shorter))[:, None], 1.0, ld_alpha) * mask
    logps = (token_logps * mask).sum(-1)
    if loss_kind in AVERAGED:
        logps = logps / lengths.clamp_min(1)
    chosen_logits, chosen_labels = reply_logits_and_labels(logits, inputs, torch.arange(half, device=logits.device),
                                                           offset=offset)
    return logps, lengths, chosen_logits, chosen_labels


def pair_scores(model, inputs: dict) -> torch.Tensor:
    """(2B,) reward-model scores of a pair batch in either layout (chosen, then rejected)."""
    if "segment_ids" not in inputs:
        return last_token_scores(model, inputs["input_ids"], inputs["attention_mask"])
    hidden = shared_forward(model, inputs, output_hidden_states=True).hidden_states[-1]
    rows, positions = last_positions(inputs)
    return score_head(model)(hidden[rows, positions]).squeeze(-1).float()


def last_token_scores(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B,) scalar score of each right-padded row at its last real token, from a sequence-classification
    model (a causal LM body with a one-output `score` head): the head applied to the final hidden state.
    The top-level forward is called (so DDP/FSDP wrappers see it); its own pooled output is not used
    because it finds the last token by pad id, which fails when the pad token ends the sequence."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, use_cache=False)
    hidden = out.hidden_states[-1]
    last = attention_mask.sum(-1) - 1
    picked = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    return score_head(model)(picked).squeeze(-1).float()


def score_head(model):
    """The `score` linear of a (possibly peft- or DDP-wrapped) sequence-classification model (under peft, the
    modules_to_save wrapper that holds the trained copy)."""
    return peft_base(model).score
