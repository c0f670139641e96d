"""Layered unfreezing: `unfreeze_schedule: new_tokens@0,top2@100,all@300`.

Each item `what@step` opens `what` from optimizer step `step` on. `what` is one of: `new_tokens` (rows of
the added tokens), `embeddings` (input embedding and untied head, all rows), `topN` / `bottomN` (the last /
first N decoder layers), `layers` (every decoder layer), `all`, or a module name such as `norm` or `mlp`.
A tensor trains from the earliest step of any item that covers it; tensors no item covers never train.
Built on the gates (train/gates.py): every tensor that will ever train is in the optimizer from step 0.
"""

from __future__ import annotations

import logging
import re

from ..config.errors import ConfigError
from ..config.unfreeze import parse_schedule
from ..model.methods import decoder_layers
from ..model.tokens import embedding_matrices
from .gates import Gates, RowGate, TensorGate

logger = logging.getLogger(__name__)
def _covers(what: str, name: str, layer: int | None, n_layers: int, is_embedding: bool) -> bool:
    if what == "all":
        return True
    if what == "embeddings":
        return is_embedding
    if what == "layers":
        return layer is not None
    top = re.fullmatch(r"(top|bottom)(\d+)", what)
    if top:
        n = int(top[2])
        return layer is not None and (layer >= n_layers - n if top[1] == "top" else layer < n)
    return f".{what}." in f".{name}"


def build_schedule(model, items: tuple[str, ...], new_ids: list[int]) -> Gates:
    schedule = parse_schedule(items)
    prefix, n_layers = decoder_layers(model)
    layer_re = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    embeddings = {id(p) for p in embedding_matrices(model)}
    new_step = min((step for what, step in schedule if what == "new_tokens"), default=None)
    if new_step is not None and not new_ids:
        raise ConfigError("`unfreeze_schedule` names new_tokens but no tokens were added")
    known = {what for what, _ in schedule}
    names = [name for name, _ in model.named_parameters()]
    for what in known - {"all", "embeddings", "layers", "new_tokens"}:
        if not re.fullmatch(r"(top|bottom)\d+", what) and not any(f".{what}." in f".{n}" for n in names):
            raise ConfigError(f"`unfreeze_schedule`: nothing in the model is called `{what}`")
    by_step: dict[int, list] = {}
    rows: list[RowGate] = []
    for name, param in model.named_parameters():
        match = layer_re.search(name)
        layer = int(match[1]) if match else None
        is_embedding = id(param) in embeddings
        steps = [step for what, step in schedule if what != "new_tokens" and _covers(what, name, layer, n_layers,
                                                                                       is_embedding)]
        whole = min(steps, default=None)
        opens = whole
        if is_embedding and new_step is not None:
            opens = new_step if whole is None else min(new_step, whole)
            if whole is None or new_step < whole:
                others = [i for i in range(param.shape[0]) if i not in set(new_ids)]
                until = whole if whole is not None else 1 << 62
                rows.append(RowGate([param], others, until, "original rows",
                                    on_open=f"Unfroze every row of {name} at step %d"))
        param.requires_grad_(opens is not None)
        if opens is not None and opens > 0:
            by_step.setdefault(opens, []).append(param)
    tensors = [TensorGate(params, step, f"{len(params)} tensors ({_describe(schedule, step)})")
               for step, params in sorted(by_step.items())]
    logger.info("unfreeze schedule: %s", ", ".join(f"{what} from step {step}" for what, step in schedule))
    return Gates(rows=rows, tensors=tensors)


def _describe(schedule: list[tuple[str, int]], step: int) -> str:
    return ", ".join(what for what, s in schedule if s == step)
