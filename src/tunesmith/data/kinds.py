"""Data kinds: how rows of a dataset become encoded examples. A stage names the kind it trains on; data/
never names a stage.

| kind       | rows                              | record          | template | rows packed        |
|------------|-----------------------------------|-----------------|----------|--------------------|
| text       | raw text (pt)                     | PackedRow       | no       | by construction    |
| supervised | conversations (sft)               | EncodedExample  | yes      | when asked (pack)  |
| pairwise   | ranking pairs (rm, dpo)           | PairExample     | yes      | never              |
| feedback   | replies tagged desirable (kto)    | FeedbackExample | yes      | never              |
| prompt     | prompts, replies ignored (ppo)    | EncodedExample  | yes      | never              |
| prompt_reply | prompts + the reply as reference answer (labels) | EncodedExample | yes | never     |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..config.errors import ConfigError
from ..config.schema import DataArgs
from .encode import EncodeStats, encode_pretrain, encode_supervised
from .encode_preference import encode_feedback, encode_pairwise, encode_prompts
from .formats import to_conversation, to_prompt, to_text
from .formats.preference import to_feedback, to_pair
from .registry import DatasetAttr

Encoder = Callable[..., tuple[list, EncodeStats]]  # (attr, rows, tokenizer, template, data args, media=None)


@dataclass(frozen=True)
class DataKind:
    name: str
    encode: Encoder  # (attr, rows, tokenizer, template, data args, media) -> (examples, stats); media: MediaContext
    needs_template: bool = True
    packed_rows: bool = False  # every row already holds several sequences with restarting positions
    packable: bool = False  # its examples are single sequences that may share rows
    trains_replies: bool = True  # its labels are replies (an example whose only trained tokens end turns is empty)


def _text(attr, rows, tokenizer, template, data, media=None):
    return encode_pretrain([to_text(attr, row, i) for i, row in enumerate(rows)], tokenizer, data.cutoff_len)


def _supervised(attr, rows, tokenizer, template, data, media=None):
    convs = [to_conversation(attr, row, i) for i, row in enumerate(rows)]
    return encode_supervised(convs, tokenizer, template, data.cutoff_len, train_on_prompt=data.train_on_prompt,
                             mask_history=data.mask_history, default_system=data.default_system, media=media,
                             name=attr.name)


def _pairwise(attr, rows, tokenizer, template, data, media=None):
    pairs = [to_pair(attr, row, i) for i, row in enumerate(rows)]
    return encode_pairwise(pairs, tokenizer, template, data.cutoff_len, default_system=data.default_system,
                           media=media, name=attr.name)


def _feedback(attr, rows, tokenizer, template, data, media=None):
    convs, tags = zip(*(to_feedback(attr, row, i) for i, row in enumerate(rows))) if rows else ((), ())
    return encode_feedback(convs, tags, tokenizer, template, data.cutoff_len, default_system=data.default_system,
                           name=attr.name)


def _prompt(attr, rows, tokenizer, template, data, media=None):
    convs = [to_prompt(attr, row, i) for i, row in enumerate(rows)]
    return encode_prompts(convs, tokenizer, template, data.cutoff_len, data.default_system, name=attr.name)


def _prompt_reply(attr, rows, tokenizer, template, data, media=None):
    convs = [to_prompt(attr, row, i) for i, row in enumerate(rows)]
    return encode_prompts(convs, tokenizer, template, data.cutoff_len, data.default_system, keep_reply=True,
                          name=attr.name)


KINDS: dict[str, DataKind] = {kind.name: kind for kind in (
    DataKind("text", _text, needs_template=False, packed_rows=True, trains_replies=False),
    DataKind("supervised", _supervised, packable=True),
    DataKind("pairwise", _pairwise),
    DataKind("feedback", _feedback),
    DataKind("prompt", _prompt, trains_replies=False),
    DataKind("prompt_reply", _prompt_reply, trains_replies=False),
)}


def get_kind(name: str) -> DataKind:
    if name not in KINDS:
        raise ConfigError(f"unknown data kind `{name}`; known: {', '.join(KINDS)}")
    return KINDS[name]
