"""Load tokenizer and model from a local directory (or the local hub cache); never download."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..config.errors import ConfigError
from ..config.schema import ModelArgs
from .attention import choose_attention

logger = logging.getLogger(__name__)


def resolve_model_path(name: str, cache_dir: str | None = None, revision: str | None = None,
                       token: str | None = None) -> str:
    """A local directory as given, or the snapshot of a hub id already in the local cache: ``revision`` (a
    branch, tag or commit hash; default main) picks the snapshot, ``token`` goes along with the lookup."""
    if Path(name).is_dir():
        return str(Path(name))
    looks_local = name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1]
    if not looks_local and name.count("/") == 1:
        try:
            from huggingface_hub import snapshot_download

            return snapshot_download(name, cache_dir=cache_dir, revision=revision, token=token, local_files_only=True)
        except Exception:  # noqa: BLE001 - any failure means "not available offline"
            pass
    at = f" --revision {revision}" if revision not in (None, "main") else ""
    raise ConfigError(f"model `{name}` was not found: it is not a local directory and not in the local Hugging Face "
                      "cache. tunesmith never downloads at run time: download it first (e.g. "
                      f"`huggingface-cli download {name}{at} --local-dir models/{name.split('/')[-1]}`) and pass the "
                      "local path as `model_name_or_path`.")


def model_path(args: ModelArgs) -> str:
    """``resolve_model_path`` with the run's `cache_dir`, `model_revision` and `hf_hub_token`."""
    return resolve_model_path(args.model_name_or_path, args.cache_dir, args.model_revision, args.hf_hub_token)


def load_tokenizer(args: ModelArgs):
    from transformers import AutoTokenizer

    path = model_path(args)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=args.use_fast_tokenizer, local_files_only=True,
                                                  trust_remote_code=args.trust_remote_code)
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot load a tokenizer from {path}: {err}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
        logger.info("tokenizer has no pad token; using eos %r for padding (pads are never trained)",
                    tokenizer.eos_token)
    return tokenizer


def load_model(args: ModelArgs, dtype, attn: str | None = None, head: str = "lm", pad_token_id: int | None = None,
               packed: bool = False):
    """A causal LM in ``dtype`` with the requested attention kernel (``flash_attn``, see model/attention.py;
    ``packed``: training batches carry sequence boundaries, so a varlen kernel can serve them).

    ``head="score"``: the same body with a one-output linear `score` head instead of the LM head (a
    transformers *ForSequenceClassification model, for reward models); a causal-LM checkpoint gets a
    freshly initialised head, a reward checkpoint keeps its own."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    path = model_path(args)
    impl = attn or choose_attention(args.flash_attn, packed)
    logger.info("attention: %s", impl)
    if not args.low_cpu_mem_usage:
        logger.info("low_cpu_mem_usage: false changes nothing: transformers 5 always loads weights lazily")
    common = dict(trust_remote_code=args.trust_remote_code)
    auto = AutoModelForCausalLM
    if head == "score":
        auto = AutoModelForSequenceClassification
        common["num_labels"] = 1
        if pad_token_id is not None:
            common["pad_token_id"] = pad_token_id
    try:
        if args.train_from_scratch:
            config = AutoConfig.from_pretrained(path, local_files_only=True, **common)
            model = auto.from_config(config, dtype=dtype, attn_implementation=impl,
                                     trust_remote_code=args.trust_remote_code)
            logger.info("train_from_scratch: randomly initialised %s from %s", type(model).__name__, path)
        else:
            model = auto.from_pretrained(path, dtype=dtype, attn_implementation=impl, local_files_only=True,
                                         **common)
    except OSError as err:
        raise ConfigError(f"cannot load model weights from {path}: {err}") from None
    except ValueError as err:
        if head == "score":
            raise ConfigError(f"{path}: transformers has no sequence-classification (reward) variant of this "
                              f"model: {err}") from None
        raise
    return model


def count_parameters(model) -> tuple[int, int]:
    trainable = total = 0
    for param in model.parameters():
        n = param.numel()
        total += n
        if param.requires_grad:
            trainable += n
    return trainable, total
