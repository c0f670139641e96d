"""What rm and dpo share: ranking rows encoded as (prompt + chosen, prompt + rejected), batched as 2B rows."""

from __future__ import annotations

from ...data.collate import PairCollator
from ...data.encode_preference import encode_pairwise
from ...data.formats.preference import to_pair


class PairwiseData:
    needs_template = True

    def encode(self, attr, rows, tokenizer, template, data):
        pairs = [to_pair(attr, row, i) for i, row in enumerate(rows)]
        return encode_pairwise(pairs, tokenizer, template, data.cutoff_len, default_system=data.default_system)

    def collator(self, pad_token_id: int):
        return PairCollator(pad_token_id)
