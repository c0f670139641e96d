"""What rm and dpo share: ranking pairs (data kind `pairwise`), batched as 2B rows (chosen, then rejected), or,
when the run plan chooses shared-prompt rows, as B rows ``prompt + chosen + rejected`` (the prompt computed
once; stages/preference/shared_prompt.py)."""

from __future__ import annotations

from ...data.collate import PairCollator
from ...types import IGNORE_INDEX
from ..base import Stage
from .shared_prompt import REPLY_KEYS, pack_shared


def shared_prefix(chosen_ids: list[int], chosen_labels: list[int], rejected_ids: list[int],
                  rejected_labels: list[int]) -> int:
    """Where the replies part: the common prefix of both rows, up to the first scored label of either (at
    least 1 token: position 0 is never predicted)."""
    common = 0
    for a, b in zip(chosen_ids, rejected_ids):
        if a != b:
            break
        common += 1
    first = [next((i for i, lab in enumerate(labels) if lab != IGNORE_INDEX), len(labels))
             for labels in (chosen_labels, rejected_labels)]
    return max(min(common, *first), 1)


class SharedPairCollator:
    """B pairs -> B shared-prompt rows; the replies are listed chosen_1..chosen_B, rejected_1..rejected_B (the
    order of the separate layout's rows). Precomputed reference log-probs come along as ``ref_logps`` (2B,)."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int = 8) -> None:
        self.pad_token_id = pad_token_id
        self.multiple = pad_to_multiple_of

    def __call__(self, items: list[dict]) -> dict:
        import torch

        prompts, replies, labels = [], [], []
        for it in items:
            cut = shared_prefix(it["input_ids"], it["labels"], it["rejected_input_ids"], it["rejected_labels"])
            prompts.append(list(it["input_ids"][:cut]))
            replies.append([list(it["input_ids"][cut:]), list(it["rejected_input_ids"][cut:])])
            labels.append([list(it["labels"][cut:]), list(it["rejected_labels"][cut:])])
        batch = pack_shared(prompts, replies, self.pad_token_id, self.multiple, labels)
        n = 2 * len(items)
        order = torch.cat((torch.arange(0, n, 2), torch.arange(1, n, 2)))
        for key in REPLY_KEYS:
            batch[key] = batch[key][order]
        if "ref_chosen_logps" in items[0]:
            batch["ref_logps"] = torch.tensor([it["ref_chosen_logps"] for it in items]
                                              + [it["ref_rejected_logps"] for it in items], dtype=torch.float32)
        return batch


class PairwiseStage(Stage):
    data_kind = "pairwise"
    shares_prompts = True

    def collator(self, pad_token_id: int, shared_prompt: bool = False) -> PairCollator | SharedPairCollator:
        return SharedPairCollator(pad_token_id) if shared_prompt else PairCollator(pad_token_id)
