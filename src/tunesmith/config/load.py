"""Read a run configuration: YAML or JSON files, ``key=value`` overrides and ``--key value`` argv.

    tunesmith train cfg.yaml learning_rate=1e-4 max_steps=10
    tunesmith train cfg.json
    tunesmith train --model_name_or_path m --stage sft --do_train ...

Later sources override earlier ones. Keys that cannot be used fail together (key_report.py); values are
coerced to their declared types and every cross-field rule in validate.py runs before torch loads.
"""

from __future__ import annotations

import json
import re
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from .coerce import coerce_hf, coerce_typed, to_float
from .errors import ConfigError
from .hf_keys import HF_TRAINING_KEYS
from .key_report import Raw, suggest, unusable_keys
from .keys import ALIASES, all_valid_keys, section_keys
from .schema import SECTIONS, Config
from .validate import validate

# TrainingArguments keys whose values are names (an enum or text): `save_strategy: no` is the strategy "no",
# not YAML 1.1's false. tests/config/test_hf_keys.py keeps this in step with transformers' annotations.
HF_NAME_KEYS = ("lr_scheduler_type", "optim", "logging_strategy", "eval_strategy", "save_strategy", "hub_strategy",
                "report_to", "debug")
# TrainingArguments keys whose YAML values are wider than transformers' annotation.
HF_KIND_OVERRIDES = {
    "resume_from_checkpoint": "any",  # true = the last checkpoint in output_dir
    "fsdp": "any",  # transformers also takes true (and a list of options)
    **{key: "name" for key in HF_NAME_KEYS},
}
# Values transformers accepts for some name keys (its enums; tests/config/test_hf_keys.py compares them), checked
# here so that a wrong value fails before anything loads.
_INTERVALS = ("no", "steps", "epoch")
HF_CHOICES: dict[str, tuple[str, ...]] = {
    "logging_strategy": _INTERVALS,
    "eval_strategy": _INTERVALS,
    "save_strategy": (*_INTERVALS, "best"),
    "hub_strategy": ("end", "every_save", "checkpoint", "all_checkpoints"),
    "lr_scheduler_type": ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
                          "constant_with_warmup", "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr",
                          "cosine_warmup_with_min_lr", "warmup_stable_decay", "greedy"),
}
_BOOL_TAG = "tag:yaml.org,2002:bool"
_STR_TAG = "tag:yaml.org,2002:str"


def decode_text(data: bytes, path: str | Path, first_line: int = 1, offset: int = 0) -> str:
    """UTF-8 bytes of a user's file as text (a leading BOM is dropped, as utf-8-sig reads it). Bytes that are not
    UTF-8 fail naming the file, line and byte offset; ``first_line`` and ``offset`` place a slice of the file
    (one line of a JSON-lines file read lazily)."""
    try:
        return data.decode("utf-8-sig" if offset == 0 else "utf-8")
    except UnicodeDecodeError as err:
        start = err.start + (3 if offset == 0 and data.startswith(b"\xef\xbb\xbf") else 0)
        line = first_line + data.count(b"\n", 0, start)
        raise ConfigError(f"{path}:{line}: not UTF-8 text: byte 0x{data[start]:02x} at byte offset {offset + start} "
                          f"({err.reason}); save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)") from None


def read_text(path: str | Path) -> str:
    """A user's text file (a config, dataset_info.json, a data file) as UTF-8 text, with one-line errors."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read it: {(err.strerror or str(err)).lower()}") from None
    return decode_text(data, path)


def _json_without_duplicates(text: str, path: Path) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                lines = [text.count("\n", 0, m.start()) + 1 for m in re.finditer(re.escape(json.dumps(key)) + r"\s*:",
                                                                               text)]
                where = f" (lines {', '.join(map(str, lines))})" if len(lines) > 1 else ""
                raise ConfigError(f"{path}: duplicate key `{key}`{where}: each key may appear once; remove one")
            seen[key] = value
        return seen

    return json.loads(text, object_pairs_hook=pairs)


def read_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = read_text(path)
    try:
        data = _json_without_duplicates(text, path) if path.suffix == ".json" else load_yaml(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(err, 'problem', err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of key: value, got {type(data).__name__}")
    return data


def parse_argv(argv: list[str]) -> Raw:
    """Files, ``key=value`` and ``--key [value]`` in order; later wins."""
    raw: Raw = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            key = arg[2:].replace("-", "_")
            if "=" in key:
                key, value = key.split("=", 1)
                raw[key] = (_parse_scalar(value), "command line")
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                raw[key] = (_parse_scalar(argv[i + 1]), "command line")
                i += 1
            else:
                raw[key] = (True, "command line")  # bare flag, e.g. --do_train
        elif "=" in arg and not Path(arg).is_file():
            key, value = arg.split("=", 1)
            raw[key.strip()] = (_parse_scalar(value), "command line")
        elif arg.endswith((".yaml", ".yml", ".json")) or Path(arg).is_file():
            for key, value in read_file(arg).items():
                raw[str(key)] = (value, arg)
        else:
            raise ConfigError(f"cannot read argument {arg!r}: expected a .yaml/.json config, key=value or --key value")
        i += 1
    return raw


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping (YAML would keep the last value silently),
    naming the line of the second one; keys brought in by a `<<` merge may be overridden, as YAML allows."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader refuses it itself
                continue
            if first is None:
                seen[key] = key_node.start_mark.line + 1
            else:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key `{key}` (first on line {first}): each key may appear once; remove "
                                "one", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """YAML, except that a top-level value written yes/no/on/off (any case) stays text, where YAML 1.1 would read a
    boolean: `save_strategy: no` is the strategy "no", `run_name: on` the name "on". Keys that take true/false read
    those words as booleans (coerce.py); values nested in lists and mappings are read as YAML 1.1 reads them.
    A key written twice in a mapping is refused (UniqueKeyLoader)."""
    loader = UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        values = [value for _, value in node.value] if isinstance(node, yaml.MappingNode) else [node]
        for value in values:
            if isinstance(value, yaml.ScalarNode) and value.tag == _BOOL_TAG and \
                    value.value.lower() not in ("true", "false"):
                value.tag = _STR_TAG
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _parse_scalar(text: str) -> Any:
    """Command-line values are read as YAML scalars (true, 3, 0.5, null, [a, b]); yes/no/on/off stay text, as in
    a config file (load_yaml)."""
    try:
        return load_yaml(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def check_keys(raw: Raw) -> Raw:
    """Fail on every key that cannot be used at once (key_report.py): unknown keys (with suggestions), LLaMA-Factory
    options tunesmith does not implement (with what to use instead; one left off, false / null, is harmless and
    dropped), nested sections and LLaMA-Factory's v1 layout. Returns the keys to build from."""
    kept, report = unusable_keys(raw, all_valid_keys())
    if report:
        raise ConfigError(report)
    return kept


def build_config(raw: Raw, for_training: bool = True, purpose: str | None = None) -> Config:
    raw = check_keys(raw)
    raw = {ALIASES.get(k, k): v for k, v in raw.items()}
    owners = section_keys()
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    training: dict[str, Any] = {}
    for key, (value, origin) in raw.items():
        if key == "warmup_ratio":
            ratio = to_float(key, value, origin)
            if not 0 <= ratio < 1:
                raise ConfigError(f"{origin}: `warmup_ratio` must be in [0, 1), got {value!r}")
            if "warmup_steps" not in raw:
                training["warmup_steps"] = ratio  # transformers reads warmup_steps < 1 as a ratio
        elif key in owners:
            section = owners[key]
            hints = typing.get_type_hints(SECTIONS[section])
            sections[section][key] = coerce_typed(key, value, hints[key], origin)
        else:
            training[key] = _hf_choice(key, coerce_hf(key, value, HF_KIND_OVERRIDES.get(key, HF_TRAINING_KEYS[key]),
                                                      origin), origin)
    built = {}
    for name, cls in SECTIONS.items():
        _check_choices(cls, sections[name], raw)
        built[name] = cls(**sections[name])
    sources = tuple(dict.fromkeys(origin for _, origin in raw.values()))
    config = Config(**built, training=training, sources=sources)
    validate(config, origins={k: o for k, (_, o) in raw.items()}, for_training=for_training, purpose=purpose)
    return config


def _hf_choice(key: str, value: Any, origin: str) -> Any:
    """A name from HF_CHOICES, lower-cased as transformers' enums spell them (`save_strategy: No` is "no")."""
    choices = HF_CHOICES.get(key)
    if not choices or not isinstance(value, str):
        return value
    if value.strip().lower() in choices:
        return value.strip().lower()
    raise ConfigError(f"{origin}: `{key}` must be one of {', '.join(choices)}; got {value!r}"
                      f"{suggest(value.strip().lower(), set(choices))}")


def _check_choices(cls: type, values: dict[str, Any], raw: Raw) -> None:
    for f in fields(cls):
        choices = f.metadata.get("choices")
        if choices and f.name in values and values[f.name] is not None and values[f.name] not in choices:
            origin = raw[f.name][1] if f.name in raw else "config"
            raise ConfigError(f"{origin}: `{f.name}` must be one of {', '.join(choices)}; got {values[f.name]!r}"
                              f"{suggest(str(values[f.name]), set(choices))}")


def load_config(argv: list[str], for_training: bool = True, purpose: str | None = None) -> Config:
    """Parse and validate; raises ConfigError with an actionable message. ``purpose`` picks the rules:
    train (default), data (``for_training=False``), infer (chat, api) or export."""
    if not argv:
        raise ConfigError("no configuration given: pass a .yaml/.json file and/or key=value overrides")
    return build_config(parse_argv(argv), for_training=for_training, purpose=purpose)
