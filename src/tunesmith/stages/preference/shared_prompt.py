"""Shared-prompt rows: replies to one prompt (chosen and rejected of a pair, a GRPO group's completions) laid
out as ONE row, ``prompt + reply_1 + reply_2 + ...``, so the prompt is computed once.

Exact attention comes from a custom 4D mask: a prompt token attends causally within the prompt; a reply
token attends to the whole prompt and causally within its own reply, never to another reply. Position ids
continue from the prompt in every reply (prompt 0..P-1, each reply P, P+1, ...), so each reply sees exactly
what it sees in its own row ``prompt + reply``: the log-probs are the separate computation's, up to float
rounding (tests/stages/test_shared_prompt.py). The first token of every reply is predicted by the prompt's
last position; token t > 0 by the reply's own position t - 1.

Needs an attention path that takes a 4D mask and explicit position ids (SDPA or eager); the run plan
chooses this layout only then (train/plan.py), and the separate rows otherwise.
"""

from __future__ import annotations

import torch

from ...types import IGNORE_INDEX

PAD_SEGMENT = -1  # segment id of padding; 0 is the prompt, k + 1 the k-th reply of the row
REPLY_KEYS = ("reply_rows", "reply_starts", "reply_lengths", "prompt_lengths")  # one entry per reply


def pack_shared(prompts: list[list[int]], replies: list[list[list[int]]], pad_id: int, multiple: int = 8,
                labels: list[list[list[int]]] | None = None) -> dict[str, torch.Tensor]:
    """One row per prompt: the prompt, then each of its replies. Returns ``input_ids``, ``position_ids``,
    ``segment_ids``, ``labels`` (R, L) and, per reply in order (row by row), ``reply_rows``, ``reply_starts``
    (index of the reply's first token in its row), ``reply_lengths`` and ``prompt_lengths`` (N,).
    ``labels``: each reply's labels (IGNORE_INDEX where not scored; a label may differ from its token);
    default: the reply's tokens."""
    labels = labels if labels is not None else replies
    rows, positions, segments, targets = [], [], [], []
    reply_rows, starts, lengths, prompt_lengths = [], [], [], []
    for r, (prompt, group) in enumerate(zip(prompts, replies)):
        ids, pos, seg = list(prompt), list(range(len(prompt))), [0] * len(prompt)
        lab = [IGNORE_INDEX] * len(prompt)
        for k, (reply, reply_labels) in enumerate(zip(group, labels[r])):
            reply_rows.append(r)
            starts.append(len(ids))
            lengths.append(len(reply))
            prompt_lengths.append(len(prompt))
            ids += reply
            pos += range(len(prompt), len(prompt) + len(reply))
            seg += [k + 1] * len(reply)
            lab += reply_labels
        rows.append(ids)
        targets.append(lab)
        positions.append(pos)
        segments.append(seg)
    width = max(len(r) for r in rows)
    width = -(-width // multiple) * multiple if multiple > 1 else width
    out = {"input_ids": torch.full((len(rows), width), pad_id, dtype=torch.long),
           "position_ids": torch.zeros((len(rows), width), dtype=torch.long),
           "segment_ids": torch.full((len(rows), width), PAD_SEGMENT, dtype=torch.long),
           "labels": torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)}
    for i, (ids, pos, seg, lab) in enumerate(zip(rows, positions, segments, targets)):
        out["labels"][i, :len(lab)] = torch.tensor(lab, dtype=torch.long)
        out["input_ids"][i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        out["position_ids"][i, :len(ids)] = torch.tensor(pos, dtype=torch.long)
        out["segment_ids"][i, :len(ids)] = torch.tensor(seg, dtype=torch.long)
    out.update(reply_rows=torch.tensor(reply_rows, dtype=torch.long), reply_starts=torch.tensor(starts),
               reply_lengths=torch.tensor(lengths), prompt_lengths=torch.tensor(prompt_lengths))
    return out


def shared_attention_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """(R, 1, L, L) boolean mask, True where query i may attend to key j: j <= i, the key is in the prompt or
    in the query's own reply; a padding query attends to itself only (no empty row, no NaN)."""
    length = segment_ids.shape[1]
    index = torch.arange(length, device=segment_ids.device)
    causal = index[None, :, None] >= index[None, None, :]
    q, k = segment_ids[:, :, None], segment_ids[:, None, :]
    allowed = causal & (q != PAD_SEGMENT) & ((k == 0) | (k == q))
    allowed = allowed | (index[:, None] == index[None, :])[None]
    return allowed[:, None]


def shared_forward(model, batch: dict, **kwargs):
    """The model's output on shared-prompt rows (the 4D mask is built here, on the rows' device)."""
    return model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                 attention_mask=shared_attention_mask(batch["segment_ids"]), use_cache=False, **kwargs)


def reply_index(batch: dict, width: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows, predicting positions, target positions, mask), each (N, W): reply token t of reply n sits at
    ``starts[n] + t`` and is predicted by position ``prompt_lengths[n] - 1`` (t = 0) or ``starts[n] + t - 1``;
    the mask is true where the token is in the reply and its label is scored."""
    starts, lengths = batch["reply_starts"], batch["reply_lengths"]
    width = int(lengths.max()) if width is None else width
    t = torch.arange(width, device=starts.device)[None, :]
    targets = (starts[:, None] + t).clamp(max=batch["input_ids"].shape[1] - 1)
    predicting = torch.where(t == 0, batch["prompt_lengths"][:, None] - 1, targets - 1)
    rows = batch["reply_rows"][:, None].expand_as(targets)
    mask = (t < lengths[:, None]) & (batch["labels"][rows, targets] != IGNORE_INDEX)
    return rows, predicting, targets, mask


def reply_token_logps(logits: torch.Tensor, batch: dict, width: int | None = None, offset: int = 0
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, W) log-probability of each reply token and its 0/1 float mask. ``offset``: the row position of
    ``logits[:, 0]`` (when only the last positions' logits were computed)."""
    rows, predicting, targets, mask = reply_index(batch, width)
    picked = logits[rows, (predicting - offset).clamp_min(0)].float()
    tokens = batch["labels"][rows, targets].clamp_min(0)
    logps = torch.gather(picked.log_softmax(-1), 2, tokens[:, :, None]).squeeze(-1)
    return logps * mask, mask.float()


def reply_logits_and_labels(logits: torch.Tensor, batch: dict, reply_ids: torch.Tensor,
                            ignore_index: int = IGNORE_INDEX, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """For the replies ``reply_ids`` (indices into the batch's replies): logits (n, W + 1, V) and unshifted
    labels (n, W + 1) laid out as in a row of their own, so that logits[:, t] predicts labels[:, t + 1] (the
    layout the sft loss and the token metrics read); labels[:, 0] and past a reply's end are ignore_index."""
    rows, predicting, targets, mask = reply_index(batch)
    rows, predicting, targets, mask = rows[reply_ids], predicting[reply_ids], targets[reply_ids], mask[reply_ids]
    picked = logits[rows, (predicting - offset).clamp_min(0)]
    labels = torch.where(mask, batch["labels"][rows, targets], torch.full_like(targets, ignore_index))
    picked = torch.cat((picked, picked[:, -1:]), dim=1)  # a last column that predicts nothing
    labels = torch.cat((torch.full_like(labels[:, :1], ignore_index), labels), dim=1)
    return picked, labels


def last_positions(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, positions) of each reply's last token (where a reward model reads its score)."""
    return batch["reply_rows"], batch["reply_starts"] + batch["reply_lengths"] - 1


def layout_choice(attention: str, text_config: dict) -> tuple[bool, str]:
    """(shared-prompt rows?, why) for a model config and the planned attention implementation."""
    if attention != "sdpa":
        return False, f"attention {attention} takes no custom 4D mask"
    if text_config.get("vision_config") is not None:
        return False, "multimodal models build their own masks"
    if "sliding_attention" in (text_config.get("layer_types") or []) or \
            (text_config.get("use_sliding_window") is not False and text_config.get("sliding_window")):
        return False, "sliding-window attention ignores a custom 4D mask"
    return True, "one prompt pass per group of replies (4D mask, positions continued)"
