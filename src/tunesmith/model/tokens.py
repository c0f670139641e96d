"""Adding tokens to a tokenizer and model: which tokens, resizing the embeddings, initialising new rows.

New rows are initialised at the scale of the existing rows (LLaMA-Factory's noise_init draws noise with
std 1/sqrt(d), which for small-norm embeddings gives new rows several times the norm of the old ones).
The same initial values go to the input embedding and, when untied, to the output head.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..config.errors import ConfigError

logger = logging.getLogger(__name__)

EXTRA_ID = re.compile(r"^<extra_id_(\d+)>$")
INIT_METHODS = ("noise_init", "desc_init", "desc_init_w_noise", "mean", "random", "copy")


@dataclass
class AddedTokens:
    """What was added: token -> id for each requested token, and which ids got fresh rows."""

    ids: dict[str, int] = field(default_factory=dict)
    new_ids: list[int] = field(default_factory=list)  # rows that need initialising (not pre-existing)
    descriptions: dict[str, str] = field(default_factory=dict)

    @property
    def all_ids(self) -> list[int]:
        return sorted(set(self.ids.values()))


def requested_tokens(args) -> tuple[list[str], list[str], dict[str, str]]:
    """(special tokens, plain tokens, descriptions) from every way a config can name tokens."""
    special = list(args.add_special_tokens)
    descriptions: dict[str, str] = {}
    if args.new_special_tokens_config:
        descriptions = read_descriptions(args.new_special_tokens_config)
        if special:
            logger.info("Both 'new_special_tokens_config' and 'add_special_tokens' are set; adding both")
        special += [t for t in descriptions if t not in special]
    if args.special_tokens_file:
        path = Path(args.special_tokens_file)
        if not path.is_file():
            raise ConfigError(f"`special_tokens_file`: {path} not found")
        special += [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                    if line.strip() and not line.startswith("#")]
    special += [f"<extra_id_{i}>" for i in range(args.add_extra_id_tokens)]
    return list(dict.fromkeys(special)), list(dict.fromkeys(args.add_tokens)), descriptions


def read_descriptions(path: str) -> dict[str, str]:
    import yaml

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"`new_special_tokens_config`: {file} not found")
    data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    if isinstance(data, list):  # [{token: ..., description: ...}, ...]
        data = {item["token"]: item.get("description", "") for item in data if isinstance(item, dict)}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ConfigError(f"`new_special_tokens_config`: {file} must map each token to its description")
    return {token: str(desc or "") for token, desc in data.items()}


def add_to_tokenizer(tokenizer, args) -> AddedTokens:
    special, plain, descriptions = requested_tokens(args)
    before = len(tokenizer)
    if special:
        tokenizer.add_special_tokens({"additional_special_tokens": special}, replace_extra_special_tokens=False)
        logger.info("Add special tokens %s", ",".join(special) if len(special) <= 12
                    else f"{','.join(special[:6])},...,{','.join(special[-3:])} ({len(special)})")
    if plain:
        tokenizer.add_tokens(plain)
        logger.info("Add tokens %s", ",".join(plain))
    added = AddedTokens(descriptions=descriptions)
    for token in special + plain:
        ids = tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1:
            raise ConfigError(f"token {token!r} still encodes to {len(ids)} ids after adding it")
        added.ids[token] = ids[0]
    added.new_ids = sorted({i for i in added.ids.values() if i >= before})
    return added


def find_extra_id_tokens(tokenizer, limit: int = 1000) -> dict[str, int]:
    """`<extra_id_0>`..`<extra_id_{limit-1}>` that the tokenizer encodes as exactly one token."""
    found = {}
    vocab = tokenizer.get_vocab()
    for i in range(limit):
        token = f"<extra_id_{i}>"
        if token in vocab:
            ids = tokenizer.encode(token, add_special_tokens=False)
            if len(ids) == 1:
                found[token] = ids[0]
    return found


def resize_embeddings(model, tokenizer, multiple: int) -> tuple[int, int]:
    """Grow the embedding (and untied head) to hold every token id, padded to ``multiple``.

    Pre-padded vocabularies (more rows than tokens) are not resized while the new ids fit.
    Returns (rows before, rows after).
    """
    rows = model.get_input_embeddings().weight.shape[0]
    need = len(tokenizer)
    if need <= rows:
        return rows, rows
    target = math.ceil(need / multiple) * multiple if multiple else need
    model.resize_token_embeddings(target, mean_resizing=False)
    logger.info("Resizing embeddings: %d -> %d (+%d rows)", rows, target, target - rows)
    return rows, target


def embedding_matrices(model) -> list:
    """The input embedding weight, plus the output head's when it is a separate tensor."""
    inp = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    mats = [inp]
    if out is not None and out.weight.data_ptr() != inp.data_ptr():
        mats.append(out.weight)
    return mats


def initialise_rows(model, tokenizer, added: AddedTokens, method: str, sources: dict[str, str],
                    seed: int = 0) -> None:
    """Initialise the rows of ``added.new_ids`` (and of tokens named in ``sources``) in every matrix."""
    import torch

    targets = {token: tid for token, tid in added.ids.items() if tid in set(added.new_ids) or token in sources}
    if not targets:
        return
    if sources and method != "copy":
        method = "copy"
    if method in ("desc_init", "desc_init_w_noise") and not added.descriptions:
        logger.warning("init_special_tokens=%s requires new_special_tokens_config. Falling back to 'noise_init'",
                       method)
        method = "noise_init"
    logger.info("Initialising %d new token rows with %s", len(targets), method)
    new = set(targets.values())
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for weight in embedding_matrices(model):
            keep = torch.ones(weight.shape[0], dtype=torch.bool)
            keep[list(new)] = False
            keep[len(tokenizer):] = False  # padding rows are not part of the vocabulary
            existing = weight[keep].float()
            mean, std = existing.mean(0), existing.std(0)
            scale = existing.norm(dim=1).mean()
            for token, tid in targets.items():
                row = _initial_row(method, token, tokenizer, weight, existing, mean, std, scale, added, sources,
                                   new, generator)
                weight[tid] = row.to(weight.dtype)


def _initial_row(method, token, tokenizer, weight, existing, mean, std, scale, added, sources, new, generator):
    import torch

    noise = lambda: torch.randn(weight.shape[1], generator=generator) * std  # noqa: E731  per-dim scale
    if method == "random":
        return noise()  # zero-mean, per-dimension scale of the existing rows
    if method == "mean":
        return mean.clone()
    if method == "noise_init":
        return mean + noise()
    text = sources.get(token) if method == "copy" else added.descriptions.get(token, "")
    ids = [i for i in tokenizer.encode(text or "", add_special_tokens=False) if i not in new and i < weight.shape[0]]
    if method == "copy" and text in tokenizer.get_vocab():
        ids = [tokenizer.convert_tokens_to_ids(text)]
    if not ids:
        logger.warning("no usable tokens to initialise %s from %r; using the mean of existing rows", token, text)
        return mean.clone()
    row = weight[ids].float().mean(0)
    if method == "desc_init_w_noise":
        row = row + 0.1 * noise()
    if method.startswith("desc_init") and len(ids) > 1:
        row = row * (scale / row.norm().clamp_min(1e-12))  # averaging shrinks the norm: restore the row scale
    return row
