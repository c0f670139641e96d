"""Read data files into rows (dicts), with errors that name the file and line; hub datasets: data/hub.py."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

from ..config.errors import ConfigError
from ..config.load import decode_text, read_text
from .hub import hub_files, hub_rows
from .registry import DatasetAttr

logger = logging.getLogger(__name__)

FILE_TYPES = (".json", ".jsonl", ".csv", ".parquet", ".arrow", ".txt")


def local_files(attr: DatasetAttr, cache_dir: str | None = None, token: str | None = None) -> list[Path]:
    """The data files of a registered dataset: its file, the readable files of its folder, or the files of a
    hub / script dataset's split (data/hub.py; ``cache_dir`` and the hub ``token`` are for those)."""
    if attr.load_from != "file":
        return hub_files(attr, cache_dir, token)
    path = Path(attr.source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in FILE_TYPES)
        if not files:
            raise ConfigError(f"dataset `{attr.name}`: folder {path} holds no {'/'.join(FILE_TYPES)} files")
        return files
    if not path.is_file():
        raise ConfigError(f"dataset `{attr.name}`: file {path} not found (from `file_name` in dataset_info.json)")
    return [path]


def load_rows(attr: DatasetAttr, cache_dir: str | None = None, token: str | None = None) -> list[dict]:
    """All rows of a registered dataset: read here from its files, or with `datasets.load_dataset` for a hub or
    script dataset (data/hub.py)."""
    if attr.load_from != "file":
        return hub_rows(attr, cache_dir, token)
    rows: list[dict] = []
    for file in local_files(attr):
        rows += read_file(file, attr.name)
    warn_if_replies_empty(attr, rows)
    return rows


def _replies(attr: DatasetAttr, row: dict) -> list:
    """The replies a row holds: its response (alpaca), its assistant turns (sharegpt / openai), or its chosen and
    rejected replies; strings, or None where a reply is not text."""
    found = [row.get(attr.column(role) or role) for role in ("chosen", "rejected") if (attr.column(role) or role) in row]
    if attr.formatting == "alpaca":
        found += [row[attr.column("response")]] if attr.column("response") in row else []
        return [v.get("value", v.get("content")) if isinstance(v, dict) else v for v in found]
    messages = row.get(attr.column("messages"))
    assistant = {attr.tag("assistant_tag"), attr.tag("function_tag"), "assistant"}
    for msg in messages if isinstance(messages, list) else ():
        if isinstance(msg, dict) and msg.get(attr.tag("role_tag"), msg.get("role")) in assistant:
            found.append(msg.get(attr.tag("content_tag"), msg.get("content")))
    return [v.get(attr.tag("content_tag"), v.get("content")) if isinstance(v, dict) else v for v in found]


def warn_if_replies_empty(attr: DatasetAttr, rows: list[dict]) -> None:
    """Every reply of the dataset empty: trained on, it would teach only end-of-turn tokens. Warned here, where the
    stage is unknown (a prompt-only use of the rows reads no reply)."""
    replies = [r for row in rows for r in _replies(attr, row)]
    if replies and all(isinstance(r, str) and not r.strip() for r in replies):
        logger.warning("dataset %s: every reply is empty (%d replies in %d rows): a stage that trains on replies "
                       "would learn only end-of-turn tokens from it; check its columns in dataset_info.json",
                       attr.name, len(replies), len(rows))


def read_file(path: Path, name: str) -> list[dict]:
    """Rows of one data file. Text is read as UTF-8 (a BOM is accepted); bytes that are not UTF-8 fail naming the
    file, line and byte offset."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = _read_jsonl(path)
    elif suffix == ".json":
        rows = _read_json(path)
    elif suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(read_text(path), newline="")))
    elif suffix in (".parquet", ".arrow"):
        rows = _read_arrow(path)
    elif suffix == ".txt":
        rows = [{"text": line} for line in read_text(path).splitlines() if line.strip()]
    else:
        raise ConfigError(f"dataset `{name}`: cannot read {path}: supported file types are {', '.join(FILE_TYPES)}")
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ConfigError(f"{path}: row {index}: expected a JSON object, got {type(row).__name__}")
    return rows


def iter_lines(path: Path):
    """(line number, text) of each line of a text file, read lazily; each line is decoded as UTF-8 (a BOM at the
    start is accepted), failing with the file, line and byte offset."""
    try:
        with path.open("rb") as fh:
            offset = 0
            for lineno, raw in enumerate(fh, 1):
                yield lineno, decode_text(raw, path, lineno, offset)
                offset += len(raw)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read it: {(err.strerror or str(err)).lower()}") from None


def iter_jsonl(path: Path):
    """Rows of a JSON-lines file, one at a time."""
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}:{lineno}: invalid JSON line: {err.msg} (column {err.colno})") from None


def _read_jsonl(path: Path) -> list[dict]:
    return list(iter_jsonl(path))


def _read_json(path: Path) -> list[dict]:
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if err.lineno > 1 or not text.lstrip().startswith("["):
            # A JSON-lines file with a .json name is common; try that before failing.
            try:
                return _read_jsonl(path)
            except ConfigError:
                pass
        raise ConfigError(f"{path}:{err.lineno}: invalid JSON: {err.msg} (column {err.colno})") from None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(data) == 1 and lists:
            return lists[0]
        return [data]
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected a JSON list of examples, got {type(data).__name__}")
    return data


def _read_arrow(path: Path) -> list[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
        else:
            with pa.memory_map(str(path)) as source:
                try:
                    table = pa.ipc.open_stream(source).read_all()
                except pa.ArrowInvalid:
                    table = pa.ipc.open_file(source).read_all()
    except (pa.ArrowException, OSError) as err:
        raise ConfigError(f"{path}: cannot read it as {path.suffix[1:]}: {str(err).splitlines()[0]}") from None
    return table.to_pylist()
