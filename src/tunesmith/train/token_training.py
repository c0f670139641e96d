"""Special-token training set-up: add tokens before encoding, resize and initialise after loading,
then build the row gates (K-step freezes) and per-token loss weights from the config."""

from __future__ import annotations

import logging

from ..config.errors import ConfigError
from ..config.schema import TokenArgs
from ..model.compat import peft_base
from ..model.tokens import AddedTokens, add_to_tokenizer, embedding_matrices, find_extra_id_tokens
from ..model.tokens import initialise_rows, resize_embeddings
from .gates import Gates, RowGate

logger = logging.getLogger(__name__)


def prepare_tokenizer(tokenizer, args: TokenArgs) -> AddedTokens:
    return add_to_tokenizer(tokenizer, args)


def prepare_model(model, tokenizer, added: AddedTokens, args: TokenArgs, seed: int) -> bool:
    """Resize and initialise; returns whether the embedding grew (LoRA then trains the embeddings)."""
    before, after = resize_embeddings(model, tokenizer, args.resize_vocab_multiple)
    sources = dict(args.init_special_tokens_from)
    if "*" in sources:
        every = sources.pop("*")
        sources = {token: every for token in added.ids} | sources
    unknown = set(sources) - set(added.ids)
    if unknown:
        raise ConfigError(f"`init_special_tokens_from` names {sorted(unknown)}, which are not added tokens")
    initialise_rows(model, tokenizer, added, args.init_special_tokens, sources, seed)
    return after > before


def trainable_embedding_params(model) -> list:
    """The tensors that actually hold (and train) embedding rows: the plain matrices, or peft's trained
    copies (modules_to_save) of them."""
    targets = []
    shapes = {tuple(w.shape) for w in embedding_matrices(peft_base(model))}
    for name, param in model.named_parameters():
        if param.requires_grad and tuple(param.shape) in shapes and param.dim() == 2:
            targets.append(param)
    return targets


def token_ids(tokenizer, tokens: tuple[str, ...], added: AddedTokens) -> dict[str, int]:
    out = {}
    for token in tokens:
        if token == "new":
            out.update(added.ids)
            continue
        ids = tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1:
            raise ConfigError(f"`freeze_tokens`: {token!r} is not a single token of this tokenizer")
        out[token] = ids[0]
    return out


NEVER = 1 << 62  # a gate that never opens


def build_gates(model, tokenizer, added: AddedTokens, args: TokenArgs) -> Gates:
    rows = []
    params = trainable_embedding_params(model)
    if args.train_new_tokens_only and params:
        new = set(added.all_ids)
        others = [i for i in range(params[0].shape[0]) if i not in new]
        rows.append(RowGate(params, others, NEVER, "original rows"))
    if args.freeze_extra_id_steps > 0:
        found = find_extra_id_tokens(tokenizer)
        ids = sorted(found.values())
        logger.info("Found %d extra_id tokens: %s", len(ids), ids)
        if ids and params:
            logger.info("Froze embeddings for %d extra_id tokens for %d steps", len(ids), args.freeze_extra_id_steps)
            rows.append(RowGate(params, ids, args.freeze_extra_id_steps, "extra_id",
                                on_open="Unfroze extra_id token embeddings at step %d"))
        elif ids:
            logger.info("extra_id embeddings are not trained in this run (frozen throughout)")
    if args.freeze_token_steps > 0 and args.freeze_tokens:
        found = token_ids(tokenizer, args.freeze_tokens, added)
        if params:
            logger.info("Froze embeddings for %d tokens for %d steps: %s", len(found), args.freeze_token_steps,
                        ", ".join(found))
            rows.append(RowGate(params, sorted(set(found.values())), args.freeze_token_steps, "tokens",
                                on_open="Unfroze token embeddings at step %d"))
    return Gates(rows=rows)


def loss_weights(tokenizer, args: TokenArgs, rows: int):
    """A (rows,) tensor of per-target loss weights, or None when every weight is 1.0."""
    import torch

    table = loss_weight_table(tokenizer, args)
    if not table:
        return None
    weights = torch.ones(rows)
    weights[list(table)] = torch.tensor(list(table.values()))
    return weights


def monitored_tokens(tokenizer, added: AddedTokens, args: TokenArgs) -> dict[str, int]:
    """The special tokens whose loss, accuracy and F1 are reported (empty: monitoring off)."""
    special = special_tokens(tokenizer, added, args)
    if args.special_token_metrics is False:
        return {}
    if args.special_token_metrics and not special:
        logger.warning("special_token_metrics: no special tokens were added, weighted or found; nothing to monitor")
    return special


def loss_weight_table(tokenizer, args: TokenArgs) -> dict[int, float]:
    """Token id -> loss weight for targets; absent ids weigh 1.0."""
    table: dict[int, float] = {}
    if args.extra_id_loss_weight is not None:
        for tid in find_extra_id_tokens(tokenizer).values():
            table[tid] = args.extra_id_loss_weight
    for token, weight in args.token_loss_weights.items():
        ids = tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1:
            raise ConfigError(f"`token_loss_weights`: {token!r} is not a single token of this tokenizer")
        table[ids[0]] = weight
    return table


def special_tokens(tokenizer, added: AddedTokens, args: TokenArgs) -> dict[str, int]:
    """Tokens to monitor: every added token, every <extra_id_N>, every token given a loss weight."""
    found = dict(added.ids)
    found.update(find_extra_id_tokens(tokenizer))
    for token in args.token_loss_weights:
        ids = tokenizer.encode(token, add_special_tokens=False)
        if len(ids) == 1:
            found[token] = ids[0]
    return found
