"""Batched generation for prediction: prompts sorted by length (little padding), left-padded so every prompt
ends where generation starts, one `generate` per batch with the KV cache; each reply ends at the first stop
token (eos, the template's end-of-turn tokens), which is not part of it. A vision-language model's batches also
get their rows' vision inputs (``media_inputs``: evaluation/media.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Generated:
    replies: list[list[int]]  # per prompt, in the given order: the generated ids before the first stop token
    generated_tokens: int  # tokens the model produced for the replies, each reply's stop token included
    seconds: float  # wall time of the generate calls


def reply_ids(row: list[int], stop_ids: set[int], pad_id: int | None) -> tuple[list[int], int]:
    """The reply before the first stop token, and how many tokens were generated for it (the stop included)."""
    for i, token in enumerate(row):
        if token in stop_ids:
            return row[:i], i + 1
    while row and pad_id is not None and row[-1] == pad_id and pad_id not in stop_ids:
        row = row[:-1]  # a finished row of a batch is padded until the longest is done
    return row, len(row)


def generate_batched(model, prompts: list[list[int]], generation_config, batch_size: int, pad_id: int,
                     stop_ids: list[int], device=None, progress: bool = False,
                     media_inputs: Callable[[list[int], object], dict] | None = None) -> Generated:
    """``media_inputs(indices, input_ids)``: extra model inputs of the batch of those prompts (in row order), given
    its left-padded ids."""
    import torch
    from tqdm.auto import tqdm

    device = device or next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)  # longest first: OOM early
    replies: list[list[int] | None] = [None] * len(prompts)
    stops, produced, seconds = set(stop_ids), 0, 0.0
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc="predicting", disable=not progress):
        width = max(len(prompts[i]) for i in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, width - len(prompts[i]):] = torch.tensor(prompts[i])
            mask[row, width - len(prompts[i]):] = 1
        extra = {key: value.to(device) for key, value in (media_inputs(batch, ids) if media_inputs else {}).items()}
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                 generation_config=generation_config, **extra)
        if device is not None and torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
        seconds += time.perf_counter() - start
        for row, i in enumerate(batch):
            replies[i], count = reply_ids(out[row, width:].tolist(), stops, pad_id)
            produced += count
    return Generated([r or [] for r in replies], produced, seconds)
