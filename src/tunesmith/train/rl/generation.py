"""Rollout generation: replies to a batch of prompts, sampled by the policy.

Prompts are left-padded for batched generation; a reply ends at (and includes) the first stop token (the
template's end-of-turn tokens and eos, templates/stops.py) or after the token budget.
"""

from __future__ import annotations

import torch

from ...config.schema import GeneratingArgs
from ...model.generation import generation_config


def rollout_generation_config(gen: GeneratingArgs, stop_ids: list[int], pad_id: int):
    """The run's generating keys (do_sample, temperature, top_p, top_k, repetition_penalty, max_new_tokens or
    max_length), one sequence per prompt."""
    return generation_config(do_sample=gen.do_sample, temperature=gen.temperature, top_p=gen.top_p, top_k=gen.top_k,
                             repetition_penalty=gen.repetition_penalty, stop_ids=stop_ids, pad_id=pad_id,
                             max_new_tokens=gen.max_new_tokens, max_length=gen.max_length)


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


