"""From dataset names to encoded training (and evaluation) examples.

registry -> files -> rows (capped by num_samples / max_samples) -> the data kind's encoder (data/kinds.py)
-> packed (when the run plan says so) -> validation split -> mixed (concat / interleave_* / sequential phases).
"""

from __future__ import annotations

import gc
import logging
from contextlib import contextmanager
import random
from pathlib import Path
from dataclasses import dataclass, field

from ..config.errors import ConfigError
from ..config.schema import DataArgs
from ..types import IGNORE_INDEX, EncodedExample
from . import cache
from .encode import EncodeStats
from .files import load_rows
from .kinds import DataKind
from .media_context import MediaContext
from .mix import interleave
from .pack import pack_examples
from .registry import DatasetAttr, get_dataset_attrs

logger = logging.getLogger(__name__)

@dataclass
class DatasetPart:
    name: str
    examples: list[EncodedExample]
    stats: EncodeStats


@dataclass
class TrainingData:
    train: list[EncodedExample]  # or a data.stream.StreamingDataset with `streaming: true`
    eval: list[EncodedExample] | None
    parts: list[DatasetPart] = field(default_factory=list)
    phase_sizes: list[int] | None = None  # sequential mixing: consecutive example counts per dataset
    packed: bool = False  # training rows carry restarting position_ids (PackedRow: text, packed sequences)

    @property
    def stats(self) -> EncodeStats:
        total = EncodeStats()
        for part in self.parts:
            total.merge(part.stats)
        return total


def cap_rows(attr: DatasetAttr, rows: list[dict], data: DataArgs, seed: int) -> list[dict]:
    """num_samples (registry: sample with a fixed seed, repeating if larger) then max_samples (first N)."""
    if attr.num_samples is not None:
        n = int(attr.num_samples)
        rng = random.Random(seed)
        order = list(range(len(rows)))
        rng.shuffle(order)
        picked = (order * (n // max(len(rows), 1) + 1))[:n]
        rows = [rows[i] for i in picked]
    if data.max_samples is not None:
        rows = rows[: data.max_samples]
    return rows


@contextmanager
def gc_paused():
    """Pause Python's cyclic GC while building millions of int lists: they hold no cycles, and the
    generational collector would otherwise rescan them over and over (measured: up to 2x the time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_part(attr: DatasetAttr, kind: DataKind, tokenizer, template, data: DataArgs, seed: int,
              hub: dict | None = None, media: MediaContext | None = None) -> DatasetPart:
    """``hub``: `cache_dir` and `token` for datasets from a hub; ``media``: the model's vision plugin (None for a
    text model)."""
    with gc_paused():
        return _load_part(attr, kind, tokenizer, template, data, seed, hub or {}, media)


def _load_part(attr: DatasetAttr, kind: DataKind, tokenizer, template, data: DataArgs, seed: int, hub: dict,
               media: MediaContext | None) -> DatasetPart:
    media_columns = [role for role in ("images", "videos") if attr.column(role)]
    if media is None and media_columns and attr.load_from != "file":
        raise ConfigError(f"dataset `{attr.name}`: maps the `{media_columns[0]}` column "
                          f"(`{attr.column(media_columns[0])}`), but the model has no vision processor: train media "
                          "with a vision-language model (Qwen2-VL, Qwen2.5-VL, Qwen3-VL) and its template")
    cached_at, rows, media_key = None, None, None
    with_media = media is not None and bool(media_columns)
    if with_media and attr.load_from == "file":  # the key covers the media files the expansion reads
        rows = cap_rows(attr, load_rows(attr, **hub), data, seed)
        media_key = media.fingerprint(rows, [attr.column(role) for role in media_columns])
    if attr.load_from == "file" and Path(attr.source).exists() and (not with_media or media_key is not None):
        key = cache.cache_key(attr, kind.name, tokenizer, template, data, seed, extra=media_key)
        cached_at = cache.cache_path(attr, key, data)
        hit = None if data.overwrite_cache else cache.load(cached_at)
        if hit is not None:
            logger.info("dataset %s: %d encoded sequences loaded from cache %s", attr.name, len(hit[0]), cached_at)
            refuse_empty_replies(attr, kind, *hit, tokenizer, template)
            return DatasetPart(attr.name, *hit)
    if rows is None:
        rows = cap_rows(attr, load_rows(attr, **hub), data, seed)
    if not rows:
        raise ConfigError(f"dataset `{attr.name}` ({attr.source}) is empty")
    examples, stats = kind.encode(attr, rows, tokenizer, template, data, media=media)
    if not examples:
        raise ConfigError(f"dataset `{attr.name}`: no example has a trained token after encoding "
                          f"({stats.dropped_empty} of {stats.examples} dropped; is `cutoff_len` "
                          f"({data.cutoff_len}) too small?)")
    refuse_empty_replies(attr, kind, examples, stats, tokenizer, template)
    if stats.dropped_media_cut:
        logger.warning("dataset %s: dropped %d of %d examples whose image or video tokens cutoff_len=%d would cut "
                       "(rows %s); raise cutoff_len, or lower image_max_pixels / video_max_pixels", attr.name,
                       stats.dropped_media_cut, stats.examples, data.cutoff_len, stats.dropped_rows[:10])
    if stats.dropped_empty:
        logger.warning("dataset %s: dropped %d of %d examples left without a trained token after truncation to "
                       "cutoff_len=%d (rows %s)", attr.name, stats.dropped_empty, stats.examples, data.cutoff_len,
                       stats.dropped_rows[:10])
    logger.info("dataset %s: %d examples -> %d sequences, %d tokens (%.1f%% trained), %d truncated",
                attr.name, stats.examples, len(examples), stats.tokens,
                100.0 * stats.trained_tokens / max(stats.tokens, 1), stats.truncated)
    if cached_at is not None:
        cache.save_in_background(cached_at, examples, stats)
    return DatasetPart(attr.name, examples, stats)


def refuse_empty_replies(attr: DatasetAttr, kind: DataKind, examples: list, stats: EncodeStats, tokenizer,
                         template) -> None:
    """A dataset whose replies are all empty would train only end-of-turn tokens: refused, naming it. Checked
    token by token only when the statistics leave room for it (at most two trained tokens per example)."""
    if not kind.trains_replies or stats.trained_tokens > 2 * max(len(examples), 1):
        return
    from ..templates.stops import stop_token_ids

    ends = set(stop_token_ids(tokenizer, template)) if template is not None else {tokenizer.eos_token_id}
    if all(label in ends for ex in examples for label in ex.labels if label != IGNORE_INDEX):
        raise ConfigError(f"dataset `{attr.name}`: every reply is empty, so only end-of-turn tokens would train; "
                          "check the reply columns of its dataset_info.json entry (`columns`)")


def split_counts(sizes: list[int], val_size: float) -> list[int]:
    """Validation examples to take from each part: a fraction of each, or a count spread by size."""
    total = sum(sizes)
    n_val = int(val_size) if val_size >= 1 else max(1, round(total * val_size))
    if n_val >= total:
        raise ConfigError(f"`val_size` ({val_size}) leaves no training examples out of {total}")
    counts = [n_val * s // total for s in sizes]
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i])[: n_val - sum(counts)]:
        counts[i] += 1
    return counts


def take_validation(examples: list[EncodedExample], n_val: int, seed: int
                    ) -> tuple[list[EncodedExample], list[EncodedExample]]:
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    val_idx = set(order[:n_val])
    return ([ex for i, ex in enumerate(examples) if i not in val_idx], [examples[i] for i in sorted(val_idx)])


def load_streaming_data(attrs, data: DataArgs, kind: DataKind, tokenizer, template, seed: int, pack: bool,
                        hub: dict | None = None) -> TrainingData:
    from .stream import StreamingDataset

    if 0 < data.val_size < 1:
        raise ConfigError("`val_size` must be a count (>= 1) with `streaming: true`: the stream's length is unknown")
    n_val = int(data.val_size)
    stream = StreamingDataset(attrs, kind, tokenizer, template, data, seed, pack, skip=n_val, hub=hub)
    eval_examples = stream.head(n_val) if n_val else None
    logger.info("streaming %s (%s); shuffle buffer of %d examples%s", ", ".join(a.name for a in attrs),
                "interleaved" if data.mix_strategy.startswith("interleave") else "in the listed order",
                data.buffer_size, f"; the first {n_val} examples are the evaluation split" if n_val else "")
    return TrainingData(train=stream, eval=eval_examples, packed=kind.packed_rows or pack)


def load_training_data(data: DataArgs, kind: DataKind, tokenizer, template, seed: int, pack: bool = False,
                       hub: dict | None = None, media: MediaContext | None = None) -> TrainingData:
    """``pack``: lay the examples (single sequences of a packable kind) into shared rows of cutoff_len; ``hub``:
    `cache_dir` and `token` for datasets from a hub; ``media``: the model's vision plugin (None: text model)."""
    attrs = get_dataset_attrs(data.dataset, data.dataset_dir)
    if data.streaming:
        if media is not None:
            raise ConfigError("`streaming: true` with a vision-language model is not supported: its rows' media are "
                              "expanded with the dataset; set `streaming: false`")
        return load_streaming_data(attrs, data, kind, tokenizer, template, seed, pack, hub)
    parts = [load_part(attr, kind, tokenizer, template, data, seed, hub, media) for attr in attrs]
    pools = [part.examples for part in parts]
    eval_examples: list[EncodedExample] | None = None
    if not data.eval_dataset and data.val_size > 0:
        counts = split_counts([len(p) for p in pools], data.val_size)
        splits = [take_validation(pool, n, seed) for pool, n in zip(pools, counts)]
        pools = [train for train, _ in splits]
        eval_examples = [ex for _, val in splits for ex in val]
    if pack:
        before = sum(len(p) for p in pools)
        pools = [pack_examples(pool, data.cutoff_len) for pool in pools]
        logger.info("packing: %d sequences -> %d rows of at most %d tokens (no attention across sequences%s)",
                    before, sum(len(p) for p in pools), data.cutoff_len,
                    "; the default for sft, `packing: false` pads each example instead" if data.packing is None
                    else "")
    train, phases = mix(pools, [p.name for p in parts], data, seed)
    if data.eval_dataset:
        eval_attrs = get_dataset_attrs(data.eval_dataset, data.dataset_dir)
        eval_examples = [ex for attr in eval_attrs
                         for ex in load_part(attr, kind, tokenizer, template, data, seed, hub, media).examples]
    return TrainingData(train=train, eval=eval_examples, parts=parts, phase_sizes=phases,
                        packed=kind.packed_rows or pack)


def mix(pools: list[list[EncodedExample]], names: list[str], data: DataArgs, seed: int
        ) -> tuple[list[EncodedExample], list[int] | None]:
    strategy = data.mix_strategy
    if len(pools) == 1:
        return pools[0], ([len(pools[0])] if strategy == "sequential" else None)
    if strategy == "sequential":
        logger.info("mix_strategy=sequential: training %s in this order, each shuffled only within itself",
                    " -> ".join(f"{n} ({len(p)})" for n, p in zip(names, pools)))
        return [ex for pool in pools for ex in pool], [len(pool) for pool in pools]
    if strategy == "concat":
        logger.info("mix_strategy=concat: %s are concatenated and shuffled together; set mix_strategy: sequential "
                    "to train them in the listed order", ", ".join(names))
        return [ex for pool in pools for ex in pool], None
    mixed = interleave(pools, data.interleave_probs or None, strategy, seed)
    logger.info("mix_strategy=%s: %s -> %d examples, shuffled together", strategy,
                ", ".join(f"{n} ({len(p)})" for n, p in zip(names, pools)), len(mixed))
    return mixed, None
