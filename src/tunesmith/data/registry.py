"""dataset_info.json: LLaMA-Factory's registry of datasets, read with the same keys and defaults."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..config.errors import ConfigError
from ..config.load import read_text
from ..utils.hub import use_modelscope, use_openmind

REGISTRY_FILE = "dataset_info.json"
FORMATTINGS = ("alpaca", "sharegpt", "openai")
COLUMN_NAMES = ("prompt", "query", "response", "history", "messages", "system", "tools", "images", "videos",
                "audios", "chosen", "rejected", "kto_tag", "text")
TAG_NAMES = ("role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag",
             "system_tag")
ENTRY_KEYS = {"file_name", "hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name", "formatting",
              "ranking", "subset", "split", "folder", "num_samples", "columns", "tags"}

_DEFAULT_COLUMNS = {
    "alpaca": {"prompt": "instruction", "query": "input", "response": "output"},
    "sharegpt": {"messages": "conversations"},
    "openai": {"messages": "messages"},
}
_DEFAULT_TAGS = {
    "sharegpt": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"},
    "openai": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
               "observation_tag": "tool", "function_tag": "function_call", "system_tag": "system"},
}


@dataclass(frozen=True)
class DatasetAttr:
    name: str
    load_from: str  # file | hf_hub | ms_hub | om_hub | script | cloud_file
    source: str  # file or folder path (resolved against dataset_dir), or hub id
    formatting: str = "alpaca"
    ranking: bool = False
    subset: str | None = None
    split: str = "train"
    folder: str | None = None
    num_samples: int | None = None
    columns: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def column(self, name: str) -> str | None:
        return self.columns.get(name)

    def tag(self, name: str) -> str:
        return self.tags[name]


MEDIA_COLUMNS = ("images", "videos", "audios")
def refuse_media_columns(where: str, columns: dict[str, str]) -> None:
    """Audio columns are refused by name (images and videos train with a vision-language model)."""
    if columns.get("audios"):
        raise ConfigError(f"{where}: maps the `audios` column (`{columns['audios']}`): audio inputs are not "
                          "supported: tunesmith trains images and videos of Qwen-VL models (Qwen2-VL, Qwen2.5-VL, "
                          "Qwen3-VL). Train it with LLaMA-Factory, or pick another dataset.")


def _source(entry: dict, where: str) -> tuple[str, str]:
    """(load_from, source) as LLaMA-Factory picks them: a hub url first (ms_hub_url when USE_MODELSCOPE_HUB is
    set or there is no hf_hub_url, om_hub_url likewise with USE_OPENMIND_HUB), then script_url, cloud_file_name,
    file_name."""
    has_hf, has_ms, has_om = ("hf_hub_url" in entry, "ms_hub_url" in entry, "om_hub_url" in entry)
    if has_ms and (use_modelscope() or not has_hf):
        return "ms_hub", entry["ms_hub_url"]
    if has_om and (use_openmind() or not has_hf):
        return "om_hub", entry["om_hub_url"]
    for key, kind in (("hf_hub_url", "hf_hub"), ("script_url", "script"), ("cloud_file_name", "cloud_file"),
                      ("file_name", "file")):
        if key in entry:
            if not isinstance(entry[key], str) or not entry[key]:
                raise ConfigError(f"{where}: `{key}` must be a non-empty string, got {entry[key]!r}")
            return kind, entry[key]
    raise ConfigError(f"{where}: needs `file_name` (or `hf_hub_url`, `ms_hub_url`, `script_url`)")


def read_registry(dataset_dir: str | Path) -> dict:
    path = Path(dataset_dir) / REGISTRY_FILE
    if not path.is_file():
        raise ConfigError(f"{path} not found: `dataset_dir` ({dataset_dir}) must hold {REGISTRY_FILE}; run from "
                          "the folder laid out like LLaMA-Factory's repository root or set `dataset_dir`")
    try:
        info = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}") from None
    if not isinstance(info, dict):
        raise ConfigError(f"{path}: must be a JSON object mapping dataset names to entries")
    return info


def _mapping(entry: dict, key: str, where: str, what: str) -> dict:
    value = entry.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: `{key}` must be a mapping of {what}; got {type(value).__name__} {value!r}")
    return value


def parse_entry(name: str, entry: dict, dataset_dir: Path, registry_path: Path) -> DatasetAttr:
    where = f"{registry_path}: dataset `{name}`"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: entry must be an object")
    unknown = set(entry) - ENTRY_KEYS
    if unknown:
        key = sorted(unknown)[0]
        close = difflib.get_close_matches(key, ENTRY_KEYS, n=1)
        raise ConfigError(f"{where}: unknown field `{key}`" + (f"; did you mean `{close[0]}`?" if close else ""))
    formatting = entry.get("formatting", "alpaca")
    if formatting not in FORMATTINGS:
        raise ConfigError(f"{where}: `formatting` must be one of {', '.join(FORMATTINGS)}, got {formatting!r}")
    columns = dict(_DEFAULT_COLUMNS[formatting])
    given_columns = _mapping(entry, "columns", where, "role -> column name, e.g. {\"prompt\": \"instruction\"}")
    for key in given_columns:
        if key not in COLUMN_NAMES:
            raise ConfigError(f"{where}: unknown column role `{key}` in `columns`; known: {', '.join(COLUMN_NAMES)}")
        if not isinstance(given_columns[key], (str, type(None))):
            raise ConfigError(f"{where}: `columns` maps `{key}` to {given_columns[key]!r}; a column name is a string")
    columns.update({k: v for k, v in given_columns.items() if v is not None})
    refuse_media_columns(where, columns)
    tags = dict(_DEFAULT_TAGS.get(formatting, _DEFAULT_TAGS["sharegpt"]))
    for key, value in _mapping(entry, "tags", where, "tag -> message key, e.g. {\"role_tag\": \"role\"}").items():
        if key not in TAG_NAMES:
            raise ConfigError(f"{where}: unknown tag `{key}` in `tags`; known: {', '.join(TAG_NAMES)}")
        tags[key] = value
    if not isinstance(entry.get("ranking", False), bool):
        raise ConfigError(f"{where}: `ranking` must be true or false, got {entry['ranking']!r}")
    kind, source = _source(entry, where)
    if kind in ("file", "script"):
        source = str(dataset_dir / source)
    return DatasetAttr(
        name=name, load_from=kind, source=source, formatting=formatting, ranking=bool(entry.get("ranking", False)),
        subset=entry.get("subset"), split=entry.get("split", "train"), folder=entry.get("folder"),
        num_samples=entry.get("num_samples"), columns=columns, tags=tags,
    )


def get_dataset_attrs(names: tuple[str, ...], dataset_dir: str | Path) -> list[DatasetAttr]:
    dataset_dir = Path(dataset_dir)
    info = read_registry(dataset_dir)
    registry_path = dataset_dir / REGISTRY_FILE
    attrs = []
    for name in names:
        if name not in info:
            close = difflib.get_close_matches(name, info, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; registered: {', '.join(sorted(info)[:20])}"
            raise ConfigError(f"dataset `{name}` is not in {registry_path}{hint}")
        attrs.append(parse_entry(name, info[name], dataset_dir, registry_path))
    return attrs
