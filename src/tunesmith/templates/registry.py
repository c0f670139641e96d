"""The name -> Template registry and its loud lookup (builtin.py fills it with the named families)."""

from __future__ import annotations

import difflib

from ..config.errors import ConfigError
from .base import Template

TEMPLATES: dict[str, Template] = {}


def register(template: Template) -> Template:
    if template.name in TEMPLATES:
        raise ValueError(f"template {template.name!r} registered twice")
    TEMPLATES[template.name] = template
    return template


def get_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        close = difflib.get_close_matches(name, TEMPLATES, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown template `{name}`{hint} Known templates: {', '.join(sorted(TEMPLATES))}") from None
