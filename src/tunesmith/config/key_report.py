"""Every key of a config that cannot be used, reported together: misspelt keys with the closest valid names,
LLaMA-Factory options tunesmith does not implement with what to use instead, nested sections, and LLaMA-Factory's
v1 layout translated key by key into the v0 flat keys tunesmith reads."""

from __future__ import annotations

import difflib
from typing import Any

from .unsupported import UNSUPPORTED, describe, left_off
from .v1_layout import V1_KEYS, describe_v1, v1_heading, v1_needs

# key -> (value, origin) where origin is the file or "command line"
Raw = dict[str, tuple[Any, str]]


def suggest(key: str, valid: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(valid), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else ""


def _unknown(key: str, value: Any, valid: set[str]) -> str:
    if isinstance(value, dict):
        inner = [str(k) for k in value if str(k) in valid]
        if inner:
            return (f"`{key}:` is a nested section, but tunesmith's keys are flat: write "
                    f"{', '.join(f'`{k}`' for k in inner)} at the top level")
    return f"unknown key `{key}`{suggest(key, valid)}"


def _unsupported(names: list[str], reason: str) -> str:
    keys = ", ".join(f"`{k}`" for k in names)
    what = "a LLaMA-Factory option" if len(names) == 1 else "LLaMA-Factory options"
    return f"{keys}: {what} that tunesmith does not support {reason}"


def unusable_keys(raw: Raw, valid: set[str]) -> tuple[Raw, str | None]:
    """(the keys to build from, the report of every key that cannot be used or None). An unsupported option left
    off (false / null, or its feature switched off) is dropped without complaint."""
    values = {key: value for key, (value, _) in raw.items()}
    kept: Raw = {}
    v1: dict[str, dict[str, Any]] = {}
    unsupported: dict[str, list[str]] = {}
    unknown: dict[str, list[str]] = {}
    for key, (value, origin) in raw.items():
        if key in valid:
            kept[key] = (value, origin)
        elif key in V1_KEYS:
            v1.setdefault(origin, {})[key] = value
        elif key in UNSUPPORTED:
            if not left_off(key, value, values):
                unsupported.setdefault(origin, []).append(key)
        else:
            unknown.setdefault(origin, []).append(key)
    if not (v1 or unsupported or unknown):
        return kept, None
    origins = list(dict.fromkeys([*v1, *unsupported, *unknown]))
    count = sum(map(len, (*v1.values(), *unsupported.values(), *unknown.values())))
    if count == 1 and not v1:
        origin = origins[0]
        if unknown:
            return kept, f"{origin}: {_unknown(unknown[origin][0], values[unknown[origin][0]], valid)}"
        key = unsupported[origin][0]
        return kept, (f"{origin}: `{key}` is a LLaMA-Factory option that tunesmith does not support "
                      f"{describe([key])[0][1]}. Remove it from the config (or set it to false).")
    blocks = []
    for origin in origins:
        lines = []
        if origin in v1:
            lines += [v1_heading(origin), *describe_v1(v1[origin])]
            if origin == list(v1)[-1]:
                lines += v1_needs({k: v for part in v1.values() for k, v in part.items()}, set(values))
        problems = [_unsupported(names, reason) for names, reason in describe(unsupported.get(origin, []))]
        problems += [_unknown(key, values[key], valid) for key in unknown.get(origin, [])]
        if problems:
            number = len(unsupported.get(origin, [])) + len(unknown.get(origin, []))
            lines.append(f"{origin}: {'other ' if origin in v1 else ''}{number} key{'s' * (number > 1)} "
                         "that cannot be used:")
            lines += [f"  {problem}" for problem in problems]
        blocks.append("\n".join(lines))
    if any(unsupported.values()):
        blocks.append("Remove the unsupported options, or switch them off (false / null).")
    return kept, "\n".join(blocks)
