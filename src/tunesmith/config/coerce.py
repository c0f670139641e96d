"""Turn raw YAML/JSON/command-line values into the declared types, with messages that name the key."""

from __future__ import annotations

import types
import typing
from typing import Any

from .errors import ConfigError

_TRUE = {"true", "yes", "1", "on", "y"}
_FALSE = {"false", "no", "0", "off", "n"}
# Words YAML 1.1 reads as booleans. A config keeps them as text (load.py); keys that take true/false read them here.
YAML11_WORDS = {"yes": True, "on": True, "no": False, "off": False}


def _fail(key: str, value: Any, want: str, origin: str) -> ConfigError:
    return ConfigError(f"{origin}: `{key}` must be {want}, got {value!r}")


def to_bool(key: str, value: Any, origin: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _fail(key, value, "true or false", origin)


def to_int(key: str, value: Any, origin: str) -> int:
    if isinstance(value, bool):
        raise _fail(key, value, "an integer", origin)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise _fail(key, value, "an integer", origin) from None
        if number.is_integer():
            return int(number)
    raise _fail(key, value, "an integer", origin)


def to_float(key: str, value: Any, origin: str) -> float:
    if isinstance(value, bool):
        raise _fail(key, value, "a number", origin)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise _fail(key, value, "a number", origin)


def to_str(key: str, value: Any, origin: str) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise _fail(key, value, "a string", origin)


def to_list(key: str, value: Any, origin: str) -> list[Any]:
    """Comma-separated string or YAML list -> list of non-empty stripped items."""
    if value is None:
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, (list, tuple)):
        return [item.strip() if isinstance(item, str) else item for item in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    raise _fail(key, value, "a comma-separated list", origin)


def to_mapping(key: str, value: Any, origin: str) -> dict:
    """A YAML mapping, or `a=1,b=2` text; a bare value (no `=`) means `*=value` (applies to all)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        out = {}
        for item in (i.strip() for i in value.split(",")):
            if not item:
                continue
            name, sep, val = item.rpartition("=")
            if not sep:
                name, val = "*", item
            if not name.strip():
                raise _fail(key, value, "`name=value` pairs separated by commas", origin)
            out[name.strip()] = val.strip()
        return out
    raise _fail(key, value, "a mapping or `name=value` pairs", origin)


_SCALARS = {bool: to_bool, int: to_int, float: to_float, str: to_str}


def coerce_typed(key: str, value: Any, annotation: Any, origin: str) -> Any:
    """Coerce ``value`` to a dataclass field annotation (scalars, ``X | None``, ``tuple[X, ...]``)."""
    origin_type = typing.get_origin(annotation)
    if origin_type in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.strip().lower() in ("null", "~")):
            return None
        return coerce_typed(key, value, args[0], origin)
    if origin_type is tuple:
        item_type = typing.get_args(annotation)[0]
        return tuple(coerce_typed(key, item, item_type, origin) for item in to_list(key, value, origin))
    if origin_type is dict:
        _, value_type = typing.get_args(annotation)
        return {str(k): coerce_typed(f"{key}[{k}]", v, value_type, origin)
                for k, v in to_mapping(key, value, origin).items()}
    if annotation in _SCALARS:
        if value is None:
            raise _fail(key, value, f"a {annotation.__name__} (not empty)", origin)
        return _SCALARS[annotation](key, value, origin)
    return value


def yaml11_flag(value: Any) -> Any:
    """yes/no/on/off text -> the boolean YAML 1.1 would have read; anything else unchanged."""
    if isinstance(value, str) and value.strip().lower() in YAML11_WORDS:
        return YAML11_WORDS[value.strip().lower()]
    return value


def coerce_hf(key: str, value: Any, kind: str, origin: str) -> Any:
    """Coerce a TrainingArguments value by the kind recorded in hf_keys.py: bool, int, float, str (each with ``?``
    when null is allowed), ``name`` (a name such as a strategy, kept as written: ``no`` is the strategy "no") or
    ``any`` (passed on; yes/no/on/off read as YAML 1.1 booleans)."""
    optional = kind.endswith("?")
    base = kind.rstrip("?")
    if optional and (value is None or (isinstance(value, str) and value.strip().lower() in ("null", "~"))):
        return None
    if base == "name":
        if isinstance(value, bool):
            raise _fail(key, value, "a name written as text (e.g. no, steps, epoch), not a boolean", origin)
        return str(value) if isinstance(value, str) else value
    if base == "any":
        return yaml11_flag(value)
    return {"bool": to_bool, "int": to_int, "float": to_float, "str": to_str}[base](key, value, origin)
