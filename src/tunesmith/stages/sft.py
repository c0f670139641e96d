"""Stage sft: supervised fine-tuning on conversations; only replies (with their end-of-turn token) train."""

from __future__ import annotations

from ..data.encode import encode_supervised
from ..data.formats import to_conversation
from .base import register


class SupervisedStage:
    name = "sft"
    needs_template = True

    def encode(self, attr, rows, tokenizer, template, data):
        convs = [to_conversation(attr, row, i) for i, row in enumerate(rows)]
        return encode_supervised(convs, tokenizer, template, data.cutoff_len, train_on_prompt=data.train_on_prompt,
                                 mask_history=data.mask_history, default_system=data.default_system)


register(SupervisedStage())
