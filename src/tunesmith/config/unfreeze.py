"""Reading `unfreeze_schedule` items (`what@step`), with no model at hand: validate.py checks the syntax
before torch loads, and train/schedule.py applies the parsed schedule to the model."""

from __future__ import annotations

import re

from .errors import ConfigError

_ITEM = re.compile(r"^(?P<what>[A-Za-z_][\w.]*)@(?P<step>\d+)$")


def parse_schedule(items: tuple[str, ...]) -> list[tuple[str, int]]:
    """``("new_tokens@0", "top2@100")`` -> ``[("new_tokens", 0), ("top2", 100)]``; ConfigError on a bad item."""
    parsed = []
    for item in items:
        match = _ITEM.match(item.strip())
        if not match:
            raise ConfigError(f"`unfreeze_schedule`: cannot read {item!r}; write items as what@step, e.g. "
                              "new_tokens@0,top2@100,all@300")
        parsed.append((match["what"], int(match["step"])))
    return parsed
