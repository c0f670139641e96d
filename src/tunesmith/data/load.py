"""From dataset names to encoded training (and evaluation) examples.

registry -> files -> rows (capped by num_samples / max_samples) -> stage.encode -> mixed -> split.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

from ..config.errors import ConfigError
from ..config.schema import DataArgs
from ..types import EncodedExample
from .encode import EncodeStats
from .files import load_rows
from .registry import DatasetAttr, get_dataset_attrs

logger = logging.getLogger(__name__)


@dataclass
class DatasetPart:
    name: str
    examples: list[EncodedExample]
    stats: EncodeStats


@dataclass
class TrainingData:
    train: list[EncodedExample]
    eval: list[EncodedExample] | None
    parts: list[DatasetPart] = field(default_factory=list)

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


def load_part(attr: DatasetAttr, stage, tokenizer, template, data: DataArgs, seed: int) -> DatasetPart:
    rows = cap_rows(attr, load_rows(attr), data, seed)
    if not rows:
        raise ConfigError(f"dataset `{attr.name}` ({attr.source}) is empty")
    examples, stats = stage.encode(attr, rows, tokenizer, template, data)
    if not examples:
        raise ConfigError(f"dataset `{attr.name}`: no example has a trained token after encoding "
                          f"({stats.dropped_empty} of {stats.examples} dropped; is `cutoff_len` "
                          f"({data.cutoff_len}) too small?)")
    if stats.dropped_empty:
        logger.warning("dataset %s: dropped %d of %d examples left without a trained token after truncation to "
                       "cutoff_len=%d (rows %s)", attr.name, stats.dropped_empty, stats.examples, data.cutoff_len,
                       stats.dropped_rows[:10])
    logger.info("dataset %s: %d examples -> %d sequences, %d tokens (%.1f%% trained), %d truncated",
                attr.name, stats.examples, len(examples), stats.tokens,
                100.0 * stats.trained_tokens / max(stats.tokens, 1), stats.truncated)
    return DatasetPart(attr.name, examples, stats)


def load_training_data(data: DataArgs, stage, tokenizer, template, seed: int) -> TrainingData:
    attrs = get_dataset_attrs(data.dataset, data.dataset_dir)
    parts = [load_part(attr, stage, tokenizer, template, data, seed) for attr in attrs]
    if len(parts) > 1 and data.mix_strategy == "concat":
        logger.info("mix_strategy=concat: %s are concatenated and shuffled together; set mix_strategy: sequential "
                    "to train them in the listed order", ", ".join(p.name for p in parts))
    elif data.mix_strategy != "concat":
        raise ConfigError(f"`mix_strategy: {data.mix_strategy}` is not available in this version; use concat")
    train = [ex for part in parts for ex in part.examples]
    eval_examples = None
    if data.eval_dataset:
        eval_attrs = get_dataset_attrs(data.eval_dataset, data.dataset_dir)
        eval_examples = [ex for attr in eval_attrs
                         for ex in load_part(attr, stage, tokenizer, template, data, seed).examples]
    elif data.val_size > 0:
        train, eval_examples = split_validation(train, data.val_size, seed)
    return TrainingData(train=train, eval=eval_examples, parts=parts)


def split_validation(examples: list[EncodedExample], val_size: float, seed: int
                     ) -> tuple[list[EncodedExample], list[EncodedExample]]:
    n_val = int(val_size) if val_size >= 1 else max(1, round(len(examples) * val_size))
    if n_val >= len(examples):
        raise ConfigError(f"`val_size` ({val_size}) leaves no training examples out of {len(examples)}")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    val_idx = set(order[:n_val])
    train = [ex for i, ex in enumerate(examples) if i not in val_idx]
    val = [examples[i] for i in sorted(val_idx)]
    return train, val
