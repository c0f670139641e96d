"""Streaming (`streaming: true`): rows are read lazily, encoded in batches and shuffled in a bounded
buffer, so data larger than memory trains with constant memory. Requires `max_steps`.

Datasets are consumed in the listed order for concat/sequential, or drawn from alternately (or with
`interleave_probs`) for interleave_*; packing applies within each encoded batch.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from itertools import islice

import torch

from ..config.schema import DataArgs
from .files import iter_jsonl, iter_lines, local_files, read_file
from .pack import pack_examples
from .registry import DatasetAttr


def iter_rows(attr: DatasetAttr, cache_dir: str | None = None, token: str | None = None) -> Iterator[dict]:
    """Rows of a registered file or folder (or a hub dataset's files), one at a time (a .json array is parsed
    whole)."""
    for file in local_files(attr, cache_dir, token):
        if file.suffix == ".jsonl":
            yield from iter_jsonl(file)
        elif file.suffix == ".txt":  # decoded line by line: bad bytes fail naming file, line and offset
            yield from ({"text": line.rstrip("\r\n")} for _, line in iter_lines(file) if line.strip())
        elif file.suffix == ".csv":
            yield from csv.DictReader(line for _, line in iter_lines(file))
        elif file.suffix == ".parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(file).iter_batches(batch_size=1024):
                yield from batch.to_pylist()
        else:
            yield from read_file(file, attr.name)


class StreamingDataset(torch.utils.data.IterableDataset):
    def __init__(self, attrs: list[DatasetAttr], kind, tokenizer, template, data: DataArgs, seed: int,
                 packing: bool, skip: int = 0, hub: dict | None = None) -> None:
        self.attrs, self.kind, self.tokenizer, self.template = attrs, kind, tokenizer, template
        self.data, self.seed, self.packing, self.skip = data, seed, packing, skip
        self.epoch = 0
        self.hub = hub or {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _encoded(self, attr: DatasetAttr) -> Iterator:
        rows = iter_rows(attr, **self.hub)
        if self.data.max_samples is not None:
            rows = islice(rows, self.data.max_samples)
        while batch := list(islice(rows, self.data.preprocessing_batch_size)):
            examples, _ = self.kind.encode(attr, batch, self.tokenizer, self.template, self.data)
            yield from examples

    def _packed(self, examples: Iterator) -> Iterator:
        """Rows packed from consecutive windows of `preprocessing_batch_size` examples."""
        while window := list(islice(examples, self.data.preprocessing_batch_size)):
            yield from pack_examples(window, self.data.cutoff_len)

    def _mixed(self) -> Iterator:
        streams = [self._encoded(attr) for attr in self.attrs]
        if not self.data.mix_strategy.startswith("interleave"):
            for stream in streams:
                yield from stream
            return
        rng = random.Random(self.seed + self.epoch)
        probs = list(self.data.interleave_probs) or None
        live = list(range(len(streams)))
        turn = 0
        while live:
            k = rng.choices(live, weights=[probs[i] for i in live])[0] if probs else live[turn % len(live)]
            turn += 1
            example = next(streams[k], None)
            if example is None:
                if self.data.mix_strategy == "interleave_under":
                    return
                live.remove(k)
                continue
            yield example

    def __iter__(self) -> Iterator[dict]:
        rng = random.Random(self.seed * 7919 + self.epoch)
        buffer: list = []
        size = max(1, self.data.buffer_size) if not self.data.disable_shuffling else 1
        examples = islice(self._mixed(), self.skip, None)  # the first `skip` examples are held out for evaluation
        for example in self._packed(examples) if self.packing else examples:
            if len(buffer) < size:
                buffer.append(example)
                continue
            i = rng.randrange(size)
            buffer[i], example = example, buffer[i]
            yield _item(example)
        rng.shuffle(buffer)
        yield from map(_item, buffer)

    def head(self, n: int) -> list:
        """The first ``n`` encoded examples in stream order (used as the evaluation split)."""
        return list(islice(self._mixed(), n))


def _item(example) -> dict:
    return example.item()
