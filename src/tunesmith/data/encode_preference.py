"""Preference data -> token ids, with the same template and masks as sft.

Everything before the final reply (system, history, the last user turn, the assistant header) is the
prompt and never trains; the reply trains with its end-of-turn token. Truncation keeps the beginning of
the prompt and of each reply, sharing ``cutoff_len`` between them as LLaMA-Factory does (the longer of
the two replies sets the reply budget, so chosen and rejected are cut alike).

Pairs (types.PairExample): ``input_ids``/``labels`` are prompt + chosen, ``rejected_input_ids`` and
``rejected_labels`` prompt + rejected.
Feedback (types.FeedbackExample): ``input_ids``/``labels`` are prompt + reply, ``kto_tag`` says whether the
reply is desirable, and ``kl_input_ids``/``kl_labels`` pair the prompt with the previous example's reply (a
mismatched completion, for KTO's KL estimate).
Prompts (ppo): an EncodedExample holding the prompt (system, history, the last user turn, the assistant
header), nothing trained: the policy writes the replies.

Templates with ``efficient_eos`` write no end-of-turn token, so each reply gets the tokenizer's EOS appended
before truncation, as LLaMA-Factory's pairwise and feedback processors do (a cut reply loses it).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config.errors import ConfigError
from ..templates.base import Template
from ..types import IGNORE_INDEX, Conversation, EncodedExample, FeedbackExample, PairExample
from .encode import EncodeStats, efficient_eos_id, split_budget, tokenize_texts
from .media_context import MediaContext, expand_all


def _prompt_and_reply(template: Template, conv: Conversation, bos: str, eos: str,
                      default_system: str | None) -> tuple[list[str], str]:
    """Text pieces of everything before the final reply, and the final reply."""
    pairs = template.turns(conv, bos, eos, default_system, mask_history=True)
    pieces = [text for pair in pairs[:-1] for text in pair] + [pairs[-1][0]]
    return pieces, pairs[-1][1]


def render_prompt_and_reply(convs: Sequence[Conversation], tokenizer, template: Template,
                            default_system: str | None = None) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, reply ids) per conversation, every piece tokenized on its own as in sft; the reply ends
    with EOS under ``efficient_eos``."""
    bos, eos = tokenizer.bos_token or "", tokenizer.eos_token or ""
    end = [] if (eos_id := efficient_eos_id(template, tokenizer)) is None else [eos_id]
    rendered = [_prompt_and_reply(template, conv, bos, eos, default_system) for conv in convs]
    flat = [text for pieces, reply in rendered for text in (*pieces, reply)]
    ids = iter(tokenize_texts(tokenizer, flat))
    out = []
    for pieces, _ in rendered:
        prompt = [token for _ in pieces for token in next(ids)]
        out.append((prompt, next(ids) + end))
    return out


def refuse_media(convs: Sequence[Conversation], name: str, what: str) -> None:
    for row, conv in enumerate(convs):
        if conv.has_media:
            raise ConfigError(f"dataset `{name}` row {row}: has images or videos, but training on {what} with media "
                              "is not supported yet: images and videos train in supervised and ranking data "
                              "(stages sft, dpo, rm)")


def _join(prompt: list[int], reply: list[int]) -> tuple[list[int], list[int]]:
    return prompt + reply, [IGNORE_INDEX] * len(prompt) + reply


def encode_pairwise(pairs: Sequence[tuple[Conversation, Conversation]], tokenizer, template: Template,
                    cutoff_len: int, default_system: str | None = None, media: MediaContext | None = None,
                    name: str = "data") -> tuple[list[PairExample], EncodeStats]:
    """``media``: expands the prompts' images and videos (both rows of a pair show the same media)."""
    convs = expand_all([c for pair in pairs for c in pair], media, name)
    pairs = list(zip(convs[::2], convs[1::2]))
    chosen = render_prompt_and_reply([c for c, _ in pairs], tokenizer, template, default_system)
    rejected = render_prompt_and_reply([r for _, r in pairs], tokenizer, template, default_system)
    stats = EncodeStats(examples=len(pairs))
    out: list[PairExample] = []
    for row, ((prompt, good), (prompt_r, bad)) in enumerate(zip(chosen, rejected)):
        if prompt != prompt_r:  # the template renders the prompt independently of the reply
            raise ConfigError(f"row {row}: the prompt renders differently before the chosen and the rejected reply")
        full_prompt = prompt
        keep_prompt, keep_reply = split_budget(len(prompt), max(len(good), len(bad)), cutoff_len)
        if keep_prompt < len(prompt) or keep_reply < max(len(good), len(bad)):
            stats.truncated += 1
        prompt, good, bad = prompt[:keep_prompt], good[:keep_reply], bad[:keep_reply]
        if not good or not bad:
            stats.dropped_empty += 1
            stats.dropped_rows.append(row)
            continue
        conv = pairs[row][0]
        if conv.has_media and media.count(prompt) != media.count(full_prompt):
            stats.dropped_media_cut += 1
            stats.dropped_rows.append(row)
            continue
        ids, labels = _join(prompt, good)
        rejected_ids, rejected_labels = _join(prompt, bad)
        example = PairExample(ids, labels, rejected_ids, rejected_labels)
        if conv.has_media:
            example.labels = media.mask(ids, labels)
            example.rejected_labels = media.mask(rejected_ids, rejected_labels)
            example.images, example.videos = list(conv.images), list(conv.videos)
        out.append(example)
        stats.kept += 1
        stats.tokens += len(ids) + len(rejected_ids)
        stats.trained_tokens += len(good) + len(bad)
    return out, stats


def _cut(prompt: list[int], reply: list[int], cutoff_len: int) -> tuple[list[int], list[int], bool]:
    keep_prompt, keep_reply = split_budget(len(prompt), len(reply), cutoff_len)
    return prompt[:keep_prompt], reply[:keep_reply], keep_prompt < len(prompt) or keep_reply < len(reply)


def encode_feedback(convs: Sequence[Conversation], tags: Sequence[bool], tokenizer, template: Template,
                    cutoff_len: int, default_system: str | None = None, name: str = "data"
                    ) -> tuple[list[FeedbackExample], EncodeStats]:
    refuse_media(convs, name, "tagged replies (KTO)")
    rendered = render_prompt_and_reply(convs, tokenizer, template, default_system)
    stats = EncodeStats(examples=len(convs))
    out: list[FeedbackExample] = []
    for row, ((prompt, reply), tag) in enumerate(zip(rendered, tags)):
        kl_reply = rendered[row - 1][1]  # the previous example's reply (the last one's for row 0)
        prompt_t, reply_t, truncated = _cut(prompt, reply, cutoff_len)
        kl_prompt, kl_reply, _ = _cut(prompt, kl_reply, cutoff_len)
        stats.truncated += truncated
        if not reply_t or not kl_reply:
            stats.dropped_empty += 1
            stats.dropped_rows.append(row)
            continue
        ids, labels = _join(prompt_t, reply_t)
        kl_ids, kl_labels = _join(kl_prompt, kl_reply)
        out.append(FeedbackExample(ids, labels, bool(tag), kl_ids, kl_labels))
        stats.kept += 1
        stats.tokens += len(ids)
        stats.trained_tokens += len(reply_t)
    return out, stats


def encode_prompts(convs: Sequence[Conversation], tokenizer, template: Template, cutoff_len: int,
                   default_system: str | None = None, keep_reply: bool = False, name: str = "data"
                   ) -> tuple[list[EncodedExample], EncodeStats]:
    """Each conversation's prompt, exactly as the prompt of an sft example; a prompt longer than
    ``cutoff_len`` is dropped (cut, it would lose its assistant header). ``keep_reply``: the dataset's reply
    follows the prompt in ``input_ids`` and is its ``labels`` (a reference answer, never cut; the prompt's
    labels are IGNORE_INDEX)."""
    refuse_media(convs, name, "prompts for generated replies (PPO, GRPO)")
    rendered = render_prompt_and_reply(convs, tokenizer, template, default_system)
    stats = EncodeStats(examples=len(convs))
    out: list[EncodedExample] = []
    for row, (prompt, reply) in enumerate(rendered):
        if len(prompt) > cutoff_len:
            stats.dropped_empty += 1
            stats.dropped_rows.append(row)
            continue
        reply = list(reply) if keep_reply else []
        out.append(EncodedExample(prompt + reply, [IGNORE_INDEX] * len(prompt) + reply))
        stats.kept += 1
        stats.tokens += len(prompt)
    return out, stats
