"""Read data files into rows (dicts), with errors that name the file and line; hub datasets: data/hub.py."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..config.errors import ConfigError
from .hub import hub_files, hub_rows
from .registry import DatasetAttr

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
    return rows


def read_file(path: Path, name: str) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = _read_jsonl(path)
    elif suffix == ".json":
        rows = _read_json(path)
    elif suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    elif suffix in (".parquet", ".arrow"):
        rows = _read_arrow(path)
    elif suffix == ".txt":
        rows = [{"text": line} for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        raise ConfigError(f"dataset `{name}`: cannot read {path}: supported file types are {', '.join(FILE_TYPES)}")
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ConfigError(f"{path}: row {index}: expected a JSON object, got {type(row).__name__}")
    return rows


def iter_jsonl(path: Path):
    """Rows of a JSON-lines file, one at a time."""
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as err:
                raise ConfigError(f"{path}:{lineno}: invalid JSON line: {err.msg} (column {err.colno})") from None


def _read_jsonl(path: Path) -> list[dict]:
    return list(iter_jsonl(path))


def _read_json(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
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

    if path.suffix == ".parquet":
        table = pq.read_table(path)
    else:
        with pa.memory_map(str(path)) as source:
            try:
                table = pa.ipc.open_stream(source).read_all()
            except pa.ArrowInvalid:
                table = pa.ipc.open_file(source).read_all()
    return table.to_pylist()
