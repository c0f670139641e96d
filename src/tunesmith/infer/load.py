"""Load a trained model for inference or export: tokenizer (with the tokens training added), template,
base weights resized to the trained embedding size, adapters merged in order."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from ..config.errors import ConfigError
from ..config.schema import Config
from ..model.load import load_model, load_tokenizer
from ..model.quantize import dequantized
from ..model.tokens import add_to_tokenizer, resize_embeddings
from ..templates.resolve import resolve_template
from ..templates.stops import stop_token_ids
from .source import ModelSource, describe, resolve_source
from .vision import load_vision

logger = logging.getLogger(__name__)


@dataclass
class Loaded:
    model: object
    tokenizer: object
    template: object  # Template or JinjaTemplate
    source: ModelSource
    stop_ids: list[int]  # generation ends at any of these (eos and the template's end-of-turn tokens)
    default_system: str | None
    vision: object | None = None  # infer/vision.py's VisionInputs for a vision-language model


def inference_dtype(name: str, model_path: str | None = None, device: str = "cpu"):
    """infer_dtype -> torch dtype. auto: float32 on the CPU, the checkpoint's dtype (else bfloat16) on a GPU."""
    import torch

    if name != "auto":
        return getattr(torch, name)
    if device == "cpu":
        return torch.float32
    stored = checkpoint_dtype(model_path)
    if stored in (torch.float16, torch.bfloat16, torch.float32):
        return stored
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def checkpoint_dtype(model_path: str | None):
    if not model_path:
        return None
    import torch
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model_path, local_files_only=True)
    except (OSError, ValueError):
        return None
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    return getattr(torch, dtype) if isinstance(dtype, str) and hasattr(torch, dtype) else dtype


def load_tokenizer_and_template(cfg: Config, source: ModelSource):
    tokenizer = load_tokenizer(replace(cfg.model, model_name_or_path=source.tokenizer_dir))
    add_to_tokenizer(tokenizer, cfg.tokens)  # tokens an inference config names again (already there: no-op)
    own = bool(cfg.data.template)  # a template named in this config: its options come from this config too
    data = {} if own else source.data
    template = resolve_template(source.template, tokenizer).configure(
        enable_thinking=data.get("enable_thinking", cfg.data.enable_thinking),
        tool_format=data.get("tool_format", cfg.data.tool_format))
    template.check_fits(tokenizer)
    default_system = cfg.data.default_system or data.get("default_system")
    return tokenizer, template, default_system


def build_model(cfg: Config, source: ModelSource, tokenizer, dtype, device: str = "cpu", merge: bool = False):
    """Base weights in ``dtype``, resized to the trained embedding size, every adapter merged in order.

    A quantized base (`quantization_bit`, or a pre-quantized checkpoint) serves its one adapter unmerged, as
    trained (QLoRA); ``merge`` (export) loads the base de-quantized instead and merges (model/quantize.py)."""
    import torch

    from ..model.quantize import serving_plan

    args, quantized = serving_plan(cfg.model, source, merge)
    if quantized:
        return build_quantized(cfg, args, source, tokenizer, dtype)
    merge_dtype = torch.float32 if source.adapters else dtype  # merge in full precision, then cast
    model = load_model(args, merge_dtype)
    model = dequantized(model, args.model_name_or_path, merge_dtype)
    _resize(model, source, tokenizer, cfg.tokens.resize_vocab_multiple)
    if device != "cpu":
        model.to(device)
    if source.adapters:
        from peft import PeftModel

        for adapter in source.adapters:
            try:
                model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
            except (RuntimeError, ValueError, OSError) as err:
                raise ConfigError(f"cannot apply adapter {adapter} to {source.base}: {err}".splitlines()[0]) from None
            logger.info("Merged adapter %s", adapter)
        model = model.to(dtype)
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def _resize(model, source: ModelSource, tokenizer, multiple: int) -> None:
    """Replay the token resize of training: the adapters' embedding rows, or the tokenizer's size."""
    import torch

    rows = model.get_input_embeddings().weight.shape[0]
    target = max(source.embedding_rows or 0, rows)
    if target > rows:
        with torch.random.fork_rng(devices=[]):  # padding rows: the same values on every load
            torch.manual_seed(0)
            model.resize_token_embeddings(target, mean_resizing=False)
        logger.info("Resized embeddings %d -> %d rows, as the adapters were trained", rows, target)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        if source.adapters:
            raise ConfigError(f"the tokenizer in {source.tokenizer_dir} has {len(tokenizer)} tokens but the adapters "
                              f"were trained with {target} embedding rows; they do not belong together")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            resize_embeddings(model, tokenizer, multiple)


def build_quantized(cfg: Config, args, source: ModelSource, tokenizer, dtype):
    """A quantized base with its one adapter on top, unmerged (quantized weights cannot hold a merge)."""
    if len(source.adapters) > 1:
        raise ConfigError(f"a quantized base takes exactly one adapter, got {len(source.adapters)} "
                          f"({', '.join(source.adapters)}); merge them first (`tunesmith export` without "
                          "`quantization_bit`), then serve the merged model quantized")
    model = load_model(args, dtype)
    _resize(model, source, tokenizer, cfg.tokens.resize_vocab_multiple)
    for adapter in source.adapters:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, adapter)
        except (RuntimeError, ValueError, OSError) as err:
            raise ConfigError(f"cannot apply adapter {adapter} to {source.base}: {err}".splitlines()[0]) from None
        logger.info("Serving adapter %s on the quantized base (not merged)", adapter)
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def load_for_inference(cfg: Config, device: str | None = None) -> Loaded:
    import torch

    source = resolve_source(cfg)
    logger.info("Loading %s", describe(source))
    tokenizer, template, default_system = load_tokenizer_and_template(cfg, source)
    vision = load_vision(cfg, source, tokenizer, template)  # before the weights: a missing processor fails fast
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = inference_dtype(cfg.infer.infer_dtype, source.base, device)
    model = build_model(cfg, source, tokenizer, dtype, device)
    return Loaded(model, tokenizer, template, source, stop_token_ids(tokenizer, template), default_system, vision)
