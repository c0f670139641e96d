"""Conversations and texts -> token ids and labels. Pure functions over a tokenizer; no model, no torch.

Supervised masks: every prompt/header token is IGNORE_INDEX; every reply is trained together with its
end-of-turn token. Truncation follows LLaMA-Factory's proportional rule per turn (a long prompt cannot
starve the reply and vice versa); examples left without a trained reply token are dropped and counted.

Templates with ``efficient_eos`` (GLM, gpt_oss, gemma2, falcon, ...) write no end-of-turn token after a reply,
so, as in LLaMA-Factory's supervised processor, the model learns to stop from the tokenizer's EOS: the label
of the first token after each trained reply (the start of the next turn's text) is ``eos_token_id`` instead
of that token, and an EOS, itself trained, ends the example. Its token is reserved before truncation, so it
is there even when the example is cut. Under ``mask_history`` only the last reply trains, so only the final
EOS does. ``train_on_prompt`` is refused with such a template, as in LLaMA-Factory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..config.errors import ConfigError
from ..templates.base import Template
from ..types import IGNORE_INDEX, Conversation, EncodedExample, PackedRow
from .media_context import MediaContext, expand_all


@dataclass
class EncodeStats:
    examples: int = 0
    kept: int = 0
    truncated: int = 0
    dropped_empty: int = 0  # no trained token left after truncation
    dropped_media_cut: int = 0  # truncation would cut an image's or a video's tokens
    tokens: int = 0
    trained_tokens: int = 0
    dropped_rows: list[int] = field(default_factory=list)

    def merge(self, other: EncodeStats) -> None:
        for name in ("examples", "kept", "truncated", "dropped_empty", "dropped_media_cut", "tokens",
                     "trained_tokens"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.dropped_rows += other.dropped_rows


def tokenize_texts(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Batch-encode without adding special tokens, in the Rust tokenizer (threads, no offsets)."""
    if not texts:
        return []
    backend = tokenizer.backend_tokenizer
    return [enc.ids for enc in backend.encode_batch_fast(list(texts), add_special_tokens=False)]


def split_budget(source_len: int, target_len: int, cutoff_len: int) -> tuple[int, int]:
    """Lengths to keep of a (prompt, reply) pair under ``cutoff_len`` tokens.

    A short reply (< half the budget) keeps everything it can; a short prompt keeps itself whole and
    leaves the rest to the reply; otherwise both shrink in proportion to their lengths.
    """
    if target_len * 2 < cutoff_len:
        max_target = cutoff_len
    elif source_len * 2 < cutoff_len:
        max_target = cutoff_len - source_len
    else:
        max_target = int(cutoff_len * (target_len / (source_len + target_len)))
    new_target = min(max_target, target_len)
    new_source = min(max(cutoff_len - new_target, 0), source_len)
    return new_source, new_target


def encode_supervised(
    convs: Sequence[Conversation],
    tokenizer,
    template: Template,
    cutoff_len: int,
    train_on_prompt: bool = False,
    mask_history: bool = False,
    default_system: str | None = None,
    row_ids: Sequence[int] | None = None,
    media: MediaContext | None = None,
    name: str = "data",
) -> tuple[list[EncodedExample], EncodeStats]:
    """``media``: the vision plugin that expands the conversations' images and videos (None: a text model, and a
    conversation with media is refused); ``name``: the dataset, for errors."""
    convs = expand_all(convs, media, name, row_ids)
    bos, eos = tokenizer.bos_token or "", tokenizer.eos_token or ""
    eos_id = efficient_eos_id(template, tokenizer)
    if eos_id is not None and train_on_prompt:
        raise ConfigError(f"template `{template.name}` does not support `train_on_prompt`: it writes no end-of-turn "
                          "token, so the first prompt token after each reply is labelled EOS to teach the model "
                          "to stop (LLaMA-Factory refuses this combination too)")
    all_turns = [template.turns(conv, bos, eos, default_system, mask_history=mask_history) for conv in convs]
    flat = [text for turns in all_turns for pair in turns for text in pair]
    ids = iter(tokenize_texts(tokenizer, flat))
    stats = EncodeStats(examples=len(convs))
    out: list[EncodedExample] = []
    for n, turns in enumerate(all_turns):
        pairs = [(next(ids), next(ids)) for _ in turns]
        example, truncated, n_reply, n_trained = _assemble(pairs, cutoff_len, train_on_prompt, mask_history, eos_id)
        stats.truncated += truncated
        if convs[n].has_media:
            if not attach_media(example, convs[n], media, [t for pair in pairs for t in pair]):
                stats.dropped_media_cut += 1
                stats.dropped_rows.append(row_ids[n] if row_ids is not None else n)
                continue
            n_trained = sum(1 for label in example.labels if label != IGNORE_INDEX)
        if n_reply == 0:
            stats.dropped_empty += 1
            stats.dropped_rows.append(row_ids[n] if row_ids is not None else n)
            continue
        stats.kept += 1
        stats.tokens += len(example.input_ids)
        stats.trained_tokens += n_trained
        out.append(example)
    return out, stats


def attach_media(example: EncodedExample, conv: Conversation, media: MediaContext, pieces: list[list[int]]) -> bool:
    """Give ``example`` its conversation's media and ignore its vision tokens in the labels; False when
    truncation cut vision tokens (the example is then dropped)."""
    if media.count(example.input_ids) != sum(media.count(piece) for piece in pieces):
        return False
    example.labels = media.mask(example.input_ids, example.labels)
    example.images, example.videos = list(conv.images), list(conv.videos)
    return True


def efficient_eos_id(template: Template, tokenizer) -> int | None:
    """The EOS id trained after replies when the template has ``efficient_eos``; None otherwise."""
    if not getattr(template, "efficient_eos", False):  # JinjaTemplate: the chat template writes its own end
        return None
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"template `{template.name}` ends replies with the tokenizer's EOS token, but the "
                          "tokenizer has none")
    return tokenizer.eos_token_id


def _assemble(pairs: list[tuple[list[int], list[int]]], cutoff_len: int, train_on_prompt: bool,
              mask_history: bool, eos_id: int | None = None) -> tuple[EncodedExample, bool, int, int]:
    """Concatenate (prompt, reply) id pairs under the budget; returns the example, whether anything was
    cut, the number of trained reply tokens (every trained token under ``train_on_prompt``) and the number
    of trained tokens (with the EOS labels of ``eos_id``, see the module docstring)."""
    input_ids: list[int] = []
    labels: list[int] = []
    truncated = False
    n_trained = n_eos = 0
    last = len(pairs) - 1
    reserve = 0 if eos_id is None else 1  # the final EOS
    for turn, (source, target) in enumerate(pairs):
        budget = cutoff_len - reserve - len(input_ids)
        if budget <= 0:
            truncated = True
            break
        if len(source) + len(target) > budget:
            keep_source, keep_target = split_budget(len(source), len(target), budget)
            source, target = source[:keep_source], target[:keep_target]
            truncated = True
        input_ids += source
        input_ids += target
        if train_on_prompt:
            labels += source
        elif eos_id is not None and turn > 0 and not mask_history and source:
            labels += [eos_id] + [IGNORE_INDEX] * (len(source) - 1)  # the previous reply ends here
            n_eos += 1
        else:
            labels += [IGNORE_INDEX] * len(source)
        if mask_history and turn != last:
            labels += [IGNORE_INDEX] * len(target)
        else:
            labels += target
            n_trained += len(target)
    if eos_id is not None:
        input_ids.append(eos_id)
        labels.append(eos_id)
        n_eos += 1
    if train_on_prompt:
        n_trained = sum(1 for label in labels if label != IGNORE_INDEX)
    return EncodedExample(input_ids=input_ids, labels=labels), truncated, n_trained, n_trained + n_eos


def encode_pretrain(texts: Sequence[str], tokenizer, cutoff_len: int, add_eos: bool = True
                    ) -> tuple[list[PackedRow], EncodeStats]:
    """Documents + EOS, concatenated and cut into rows of ``cutoff_len`` tokens.

    Each row carries ``position_ids`` that restart at every document start, so attention never crosses
    documents (the model builds a block-diagonal causal mask from them) and the first token of each
    document is not predicted from the previous document.
    """
    eos_id = tokenizer.eos_token_id if add_eos else None
    docs = tokenize_texts(tokenizer, texts)
    stats = EncodeStats(examples=len(docs))
    out: list[PackedRow] = []
    ids: list[int] = []
    pos: list[int] = []
    labels: list[int] = []

    def flush() -> None:
        if any(label != IGNORE_INDEX for label in labels):
            out.append(PackedRow(list(ids), list(labels), list(pos)))
        ids.clear(), pos.clear(), labels.clear()

    for doc in docs:
        if eos_id is not None:
            doc = doc + [eos_id]
        if not doc:
            continue
        stats.kept += 1
        start = 0
        while start < len(doc):
            room = cutoff_len - len(ids)
            piece = doc[start:start + room]
            ids.extend(piece)
            pos.extend(range(len(piece)))
            labels.append(IGNORE_INDEX)  # nothing precedes a row's or a document's first token
            labels.extend(piece[1:])
            start += len(piece)
            if len(ids) >= cutoff_len:
                flush()
    flush()
    stats.tokens = sum(len(e.input_ids) for e in out)
    stats.trained_tokens = sum(sum(1 for x in e.labels if x != IGNORE_INDEX) for e in out)
    stats.truncated = 0
    return out, stats
