"""What rm and dpo share: ranking pairs (data kind `pairwise`), batched as 2B rows (chosen, then rejected)."""

from __future__ import annotations

from ...data.collate import PairCollator
from ..base import Stage


class PairwiseStage(Stage):
    data_kind = "pairwise"

    def collator(self, pad_token_id: int) -> PairCollator:
        return PairCollator(pad_token_id)
