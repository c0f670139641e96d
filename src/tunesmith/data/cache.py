"""Cache of encoded datasets, keyed by everything that changes the encoding.

The key hashes the data file contents, the registry entry, the tokenizer (its full serialised form and
special tokens), the template, the data kind, cutoff_len and the masking options, caps and seed. Any change
to one of them gives a new key, so a stale cache is never read. Entries are written atomically.
Location: `tokenized_path` if set, else $TUNESMITH_CACHE_DIR, else ~/.cache/tunesmith/tokenized.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import zipfile
import zlib
from dataclasses import asdict, fields
from itertools import chain
from pathlib import Path

from .. import __version__
from ..config.schema import DataArgs
from ..types import RECORDS, EncodedExample
from ..utils.files import WriteError, atomic_writer
from .encode import EncodeStats
from .registry import DatasetAttr

logger = logging.getLogger(__name__)

CACHE_FORMAT = 5  # 5: records carry their media; 4: efficient_eos encodings; 3: typed records; bump when the layout or encoding changes

_ENCODING_KEYS = ("cutoff_len", "train_on_prompt", "mask_history", "max_samples", "default_system",
                  "enable_thinking", "tool_format")


def cache_dir(data: DataArgs) -> Path:
    if data.tokenized_path:
        return Path(data.tokenized_path)
    return Path(os.environ.get("TUNESMITH_CACHE_DIR", Path.home() / ".cache" / "tunesmith" / "tokenized"))


def _file_digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def cache_key(attr: DatasetAttr, kind_name: str, tokenizer, template, data: DataArgs, seed: int,
              extra: str | None = None) -> str:
    """``extra``: anything else the encoding depends on (the media fingerprint of a vision-language run)."""
    tokenizer_id = hashlib.blake2b(tokenizer.backend_tokenizer.to_str().encode(), digest_size=16).hexdigest()
    parts = {
        "version": __version__,
        "format": CACHE_FORMAT,
        "kind": kind_name,
        "data": _file_digest(Path(attr.source)),
        "attr": asdict(attr) | {"source": None},
        "tokenizer": [tokenizer_id, tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token],
        "template": repr(template),
        "options": {k: getattr(data, k) for k in _ENCODING_KEYS},
        "seed": seed if attr.num_samples is not None else None,
        "extra": extra,
    }
    return hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=12).hexdigest()


def cache_path(attr: DatasetAttr, key: str, data: DataArgs) -> Path:
    return cache_dir(data) / f"{attr.name}-{key}.npz"


_WRITERS: dict[Path, threading.Thread] = {}


def save_in_background(path: Path, examples: list[EncodedExample], stats: EncodeStats) -> None:
    """Write the entry on a thread, overlapping the write with model loading. The thread is not a
    daemon, so the interpreter finishes it before exiting; the atomic rename means a reader sees either
    the whole entry or none."""

    def write() -> None:
        try:
            save(path, examples, stats)
        except WriteError as err:  # a read-only or full cache disk must not stop training
            logger.warning("%s; training goes on without caching it (set `tokenized_path` or $TUNESMITH_CACHE_DIR "
                           "to a writable folder)", err)

    thread = threading.Thread(target=write, name=f"tunesmith-cache-{path.name}")
    _WRITERS[path] = thread
    thread.start()


def wait_for_writes() -> None:
    for thread in list(_WRITERS.values()):
        thread.join()
    _WRITERS.clear()


def load(path: Path) -> tuple[list[EncodedExample], EncodeStats] | None:
    import numpy as np

    pending = _WRITERS.pop(path, None)
    if pending is not None:
        pending.join()
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            offsets = npz["offsets"].tolist()
            ids, labels = npz["input_ids"].tolist(), npz["labels"].tolist()
            stats = EncodeStats(**json.loads(str(npz["stats"])))
            record = RECORDS[str(npz["record"])]
            field_kinds = json.loads(str(npz["field_kinds"]))
            extra = {key: _read_field(npz, key, kind, offsets) for key, kind in field_kinds.items()}
        if offsets[-1] != len(ids) or len(labels) != len(ids) or any(len(v) != len(offsets) - 1
                                                                     for v in extra.values()):
            raise ValueError("its arrays do not agree in length")
        examples = [record(ids[start:end], labels[start:end], **{k: v[i] for k, v in extra.items()})
                    for i, (start, end) in enumerate(zip(offsets, offsets[1:]))]
    except (OSError, EOFError, ValueError, KeyError, TypeError, IndexError, zipfile.BadZipFile, zlib.error) as err:
        # a truncated or damaged entry (an interrupted copy, a full disk) or another layout: encode again
        logger.warning("tokenized cache %s is unreadable (%s: %s); encoding the dataset again and rewriting it",
                       path, type(err).__name__, str(err).splitlines()[0] if str(err) else "no detail")
        return None
    return examples, stats


def _read_field(npz, key: str, kind: str, offsets: list[int]) -> list:
    """A record field per example: `aligned` sequences share the example's offsets, `seq` have their own,
    `scalar` is one value per example, `json` one JSON list per example (media items)."""
    values = npz[f"field.{key}"].tolist()
    if kind == "scalar":
        return values
    if kind == "json":
        return [json.loads(v) for v in values]
    bounds = offsets if kind == "aligned" else npz[f"field_offsets.{key}"].tolist()
    return [values[a:b] for a, b in zip(bounds, bounds[1:])]


def save(path: Path, examples: list[EncodedExample], stats: EncodeStats) -> None:
    """Write an entry atomically; raises WriteError (one line naming the path) when the folder is not writable."""
    import numpy as np

    offsets = [0]
    for ex in examples:
        offsets.append(offsets[-1] + len(ex.input_ids))
    flat = lambda field: np.fromiter(chain.from_iterable(field(ex) for ex in examples),  # noqa: E731
                                     dtype=np.int32, count=offsets[-1])
    arrays = {
        "input_ids": flat(lambda ex: ex.input_ids),
        "labels": flat(lambda ex: ex.labels),
        "offsets": np.asarray(offsets, dtype=np.int64),
        "stats": np.asarray(json.dumps({f.name: getattr(stats, f.name) for f in fields(stats)})),
    }
    record = type(examples[0]) if examples else EncodedExample
    if any(type(ex) is not record for ex in examples):
        raise TypeError("a cache entry holds one record type")
    field_kinds: dict[str, str] = {}
    for key in (f.name for f in fields(record) if f.name not in ("input_ids", "labels")):
        values = [getattr(ex, key) for ex in examples]
        first = next((v for v in values if v), None) if isinstance(values[0], list) else None
        if first is not None and not isinstance(first[0], int):
            field_kinds[key] = "json"  # media items (paths, {"path": ...} objects), one JSON list per example
            arrays[f"field.{key}"] = np.asarray([json.dumps(v, ensure_ascii=False) for v in values])
        elif isinstance(values[0], list):
            aligned = all(len(v) == len(ex.input_ids) for v, ex in zip(values, examples))
            field_kinds[key] = "aligned" if aligned else "seq"
            bounds = offsets if aligned else [0]
            if not aligned:
                for v in values:
                    bounds.append(bounds[-1] + len(v))
                arrays[f"field_offsets.{key}"] = np.asarray(bounds, dtype=np.int64)
            arrays[f"field.{key}"] = np.fromiter(chain.from_iterable(values), dtype=np.int32, count=bounds[-1])
        else:
            field_kinds[key] = "scalar"
            arrays[f"field.{key}"] = np.asarray(values)
    arrays["record"] = np.asarray(record.__name__)
    arrays["field_kinds"] = np.asarray(json.dumps(field_kinds))
    with atomic_writer(path, "tokenized cache") as fh:  # a reader sees the whole entry or none
        np.savez(fh, **arrays)
