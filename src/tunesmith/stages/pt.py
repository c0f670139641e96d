"""Stage pt: continued pretraining on raw text (text + EOS, concatenated, cut into cutoff_len rows,
attention kept inside each document)."""

from __future__ import annotations

from ..data.encode import encode_pretrain
from ..data.formats import to_text
from .base import register


class PretrainStage:
    name = "pt"
    needs_template = False

    def encode(self, attr, rows, tokenizer, template, data):
        texts = [to_text(attr, row, i) for i, row in enumerate(rows)]
        return encode_pretrain(texts, tokenizer, data.cutoff_len)


register(PretrainStage())
