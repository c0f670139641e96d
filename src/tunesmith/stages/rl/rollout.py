"""Rollouts: generate replies to prompts with the policy, then score each reply token.

Prompts are left-padded for batched generation; a reply ends at (and includes) the first stop token (the
template's end-of-turn tokens and eos) or after the token budget. For the forward passes each row is
prompt + reply, right-padded; ``starts`` is where the reply begins, so the reply tokens are predicted by
the logits at ``starts - 1 + t``. Nothing of a prompt, nothing after a reply's end is ever scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def stop_token_ids(tokenizer, template) -> list[int]:
    """eos, the template's stop words, and the end-of-turn token that closes the assistant slot."""
    ids: list[int] = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    words = list(getattr(template, "stop_words", ()) or ())
    slot = getattr(template, "assistant", None)
    if slot and "{{content}}" in slot:
        words.append(slot.split("{{content}}")[-1].replace("{{eos_token}}", tokenizer.eos_token or "").strip())
    for word in filter(None, words):
        encoded = tokenizer.encode(word, add_special_tokens=False)
        if len(encoded) == 1 and encoded[0] not in ids:
            ids.append(encoded[0])
    return ids


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row):] = 1
    return ids, mask


def cut_at_stop(tokens: list[int], stop_ids: set[int]) -> list[int]:
    """A generated row up to and including its first stop token (the whole row if none)."""
    for i, token in enumerate(tokens):
        if token in stop_ids:
            return tokens[:i + 1]
    return tokens


@torch.no_grad()
def generate(policy, prompts: list[list[int]], generation_config, stop_ids: list[int], pad_id: int
             ) -> list[list[int]]:
    """Sampled replies (token ids) to a batch of prompts."""
    device = next(policy.parameters()).device
    ids, mask = left_pad(prompts, pad_id)
    out = policy.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                          generation_config=generation_config)
    stops = set(stop_ids)
    return [cut_at_stop(row, stops) or [pad_id] for row in out[:, ids.shape[1]:].tolist()]


@dataclass
class RolloutBatch:
    """prompt + reply rows, right-padded, and where each reply sits."""

    input_ids: torch.Tensor  # (B, L)
    attention_mask: torch.Tensor  # (B, L)
    starts: torch.Tensor  # (B,) index of the first reply token
    lengths: torch.Tensor  # (B,) reply lengths

    @classmethod
    def build(cls, prompts: list[list[int]], replies: list[list[int]], pad_id: int) -> RolloutBatch:
        rows = [p + r for p, r in zip(prompts, replies)]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, :len(row)] = 1
        return cls(ids, mask, torch.tensor([len(p) for p in prompts]), torch.tensor([len(r) for r in replies]))

    @property
    def reply_width(self) -> int:
        return int(self.lengths.max())

    def reply_mask(self) -> torch.Tensor:
        """(B, R) 1.0 on real reply tokens."""
        return (torch.arange(self.reply_width)[None, :] < self.lengths[:, None]).float()

    def select(self, index: torch.Tensor) -> RolloutBatch:
        return RolloutBatch(self.input_ids[index], self.attention_mask[index], self.starts[index], self.lengths[index])

    def to(self, device) -> RolloutBatch:
        return RolloutBatch(self.input_ids.to(device), self.attention_mask.to(device), self.starts.to(device),
                            self.lengths.to(device))


def reply_positions(batch: RolloutBatch, width: int) -> torch.Tensor:
    """(B, R) positions of the logits (and states) that predict each reply token, clamped inside the row."""
    offsets = torch.arange(width, device=batch.starts.device)[None, :]
    return (batch.starts[:, None] - 1 + offsets).clamp(max=batch.input_ids.shape[1] - 2)


def reply_logprobs(logits: torch.Tensor, batch: RolloutBatch, width: int) -> torch.Tensor:
    """(B, R) log-probability of each reply token (garbage where the reply mask is 0)."""
    pos = reply_positions(batch, width)
    picked = torch.gather(logits, 1, pos[:, :, None].expand(-1, -1, logits.shape[-1])).float()
    targets = torch.gather(batch.input_ids, 1, pos + 1)
    return torch.gather(picked.log_softmax(-1), 2, targets[:, :, None]).squeeze(-1)


def reply_states(values: torch.Tensor, batch: RolloutBatch, width: int) -> torch.Tensor:
    """(B, R) per-position values taken at the positions that predict the reply tokens."""
    return torch.gather(values, 1, reply_positions(batch, width))


class PolicyWithValue(nn.Module):
    """The policy and a value head (Linear(hidden, 1)) on its final hidden state: one body, two outputs.
    The top-level module is what the optimizer and accelerate see."""

    def __init__(self, policy, hidden_size: int) -> None:
        super().__init__()
        self.policy = policy
        self.value_head = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.value_head.weight, std=1.0 / (hidden_size + 1))
        nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids, attention_mask):
        out = self.policy(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True,
                          use_cache=False)
        values = self.value_head(out.hidden_states[-1].float()).squeeze(-1)
        return out.logits, values


def policy_outputs(model, batch: RolloutBatch, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probs, values) of the reply tokens under a PolicyWithValue (possibly DDP-wrapped)."""
    logits, values = model(batch.input_ids, batch.attention_mask)
    return reply_logprobs(logits, batch, width), reply_states(values, batch, width)


def model_logprobs(model, batch: RolloutBatch, width: int) -> torch.Tensor:
    """Reply log-probs under a plain causal LM (the reference)."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
    return reply_logprobs(logits, batch, width)
