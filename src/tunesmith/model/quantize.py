"""Quantized models (QLoRA): LLaMA-Factory's quantization keys -> how the model loads, k-bit preparation for
training, pre-quantized checkpoints, and clear errors for packages that are missing.

On-the-fly (`quantization_bit`):
  - bnb: transformers' BitsAndBytesConfig (4-bit nf4/fp4 with `double_quantization`, or 8-bit LLM.int8()),
    compute and storage dtype = the run's weights dtype (LLaMA-Factory's choice; the storage dtype lets FSDP
    shard the packed weights). Runs on the CPU too (bitsandbytes' CPU backend).
  - hqq: the model loads in its dtype, then every linear layer but the output head is replaced by hqq's
    HQQLinear (1-8 bits, group size 64, axis 0 as LLaMA-Factory asks). transformers 5 has no on-the-fly HQQ
    path, so tunesmith quantizes with hqq's own API; peft puts LoRA on HQQLinear. Runs on the CPU.
  - eetq: transformers' EetqConfig (8 bit; needs a CUDA GPU and the `kernels` package).
Pre-quantized checkpoints (a `quantization_config` in config.json: GPTQ, AWQ, AQLM, bitsandbytes,
compressed-tensors, ...) load with their own config; `quantization_bit` is then ignored (as in LLaMA-Factory).

Only LoRA trains on a quantized base (seed rule: exactly one adapter; config/rules_quantization.py refuses the
rest before loading). Embeddings and the output head are never quantized, so new token rows train in float32
next to the quantized layers (modules_to_save), and every quantized byte stays as loaded.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path

from ..config.errors import ConfigError

logger = logging.getLogger(__name__)

# on-the-fly method -> (import name, pip name) of what it needs
METHOD_PACKAGES = {"bnb": (("bitsandbytes", "bitsandbytes"),), "hqq": (("hqq", "hqq"),),
                   "eetq": (("kernels", "kernels"),)}
# stored quant_method -> packages transformers needs to load it
STORED_PACKAGES = {
    "gptq": (("optimum", "optimum"), ("gptqmodel", "gptqmodel")),
    "awq": (("gptqmodel", "gptqmodel"),),
    "aqlm": (("aqlm", "aqlm[cpu,gpu]"),),
    "bitsandbytes": (("bitsandbytes", "bitsandbytes"),),
    "compressed-tensors": (("compressed_tensors", "compressed-tensors"),),
    "hqq": (("hqq", "hqq"),),
    "eetq": (("kernels", "kernels"),),
}
GPU_ONLY = ("eetq",)
# stored formats loaded de-quantized (LLaMA-Factory's choice): the model is then plain and trains any way
DEQUANTIZED_ON_LOAD = ("fp8", "mxfp4")
HQQ_GROUP_SIZE = 64


def _missing(packages) -> list[str]:
    return [pip for module, pip in packages if importlib.util.find_spec(module) is None]


def _install_hint(pips: list[str]) -> str:
    extra = " (or `pip install 'tunesmith[quantization]'`)" if set(pips) <= {"bitsandbytes", "hqq"} else ""
    return f"`pip install {' '.join(pips)}`{extra}"


def stored_quantization(path: str | None) -> dict | None:
    """The `quantization_config` of a pre-quantized checkpoint folder (config.json), or None."""
    if not path:
        return None
    config = Path(path) / "config.json"
    if not config.is_file():
        return None
    try:
        stored = json.loads(config.read_text(encoding="utf-8")).get("quantization_config")
    except (OSError, ValueError, AttributeError):
        return None
    return stored if isinstance(stored, dict) and stored else None


def stored_method(stored: dict) -> str:
    method = str(stored.get("quant_method", "")).lower()
    if method == "bitsandbytes" or stored.get("load_in_4bit") or stored.get("load_in_8bit"):
        return "bitsandbytes"
    return method or "unknown"


def current_device() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return "cpu"


def load_kwargs(args, path: str, compute_dtype, head: str = "lm", training: bool = True) -> dict:
    """Extra from_pretrained arguments for ``args`` (ModelArgs) on checkpoint ``path``; empty when the model is
    not quantized. Checks the packages first (a clear error naming what to install, before any weight loads)."""
    stored = stored_quantization(path)
    if stored is not None and stored_method(stored) in DEQUANTIZED_ON_LOAD:
        from transformers import FineGrainedFP8Config, Mxfp4Config

        logger.info("de-quantizing the %s checkpoint %s while loading (as LLaMA-Factory)", stored_method(stored), path)
        config = Mxfp4Config if stored_method(stored) == "mxfp4" else FineGrainedFP8Config
        return {"quantization_config": config(dequantize=True)}
    if stored is not None:
        method = stored_method(stored)
        if args.quantization_bit is not None:
            logger.warning("`quantization_bit` does not affect the pre-quantized model %s (%s)", path, method)
        missing = _missing(STORED_PACKAGES.get(method, ()))
        if missing:
            raise ConfigError(f"{path} is a {method}-quantized checkpoint; loading it needs {', '.join(missing)}: "
                              f"{_install_hint(missing)}")
        bits = stored.get("bits") or (4 if stored.get("load_in_4bit") else 8 if stored.get("load_in_8bit") else "?")
        logger.info("loading a pre-quantized %s-bit %s model", bits, method)
        return {}
    bits, method = args.quantization_bit, args.quantization_method
    if bits is None:
        return {}
    missing = _missing(METHOD_PACKAGES.get(method, ()))
    if missing:
        raise ConfigError(f"`quantization_method: {method}` needs {', '.join(missing)}: {_install_hint(missing)}")
    import torch

    if method in GPU_ONLY and not torch.cuda.is_available():
        raise ConfigError(f"`quantization_method: {method}` needs a CUDA GPU (none here); use bnb or hqq, which also "
                          "run on the CPU")
    if method == "hqq":
        return {"device_map": {"": current_device()}}  # quantized after loading (quantize_loaded)
    from transformers import BitsAndBytesConfig, EetqConfig

    if method == "eetq":
        logger.info("Quantizing model to 8 bit with EETQ.")
        return {"quantization_config": EetqConfig(), "device_map": {"": current_device()}}
    skip = ["score"] if head == "score" else None  # a reward head trains in full
    if bits == 8:
        _once(logging.getLogger("bitsandbytes.autograd._functions"), "MatMul8bitLt: inputs will be cast")
        config = BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
        detail = "LLM.int8()"
    else:
        config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=compute_dtype,
                                    bnb_4bit_use_double_quant=args.double_quantization,
                                    bnb_4bit_quant_type=args.quantization_type, bnb_4bit_quant_storage=compute_dtype,
                                    llm_int8_skip_modules=skip)
        detail = f"{args.quantization_type}{', double quantization' if args.double_quantization else ''}"
    logger.info("Quantizing model to %d bit with bitsandbytes (%s, compute dtype %s)", bits, detail,
                str(compute_dtype).replace("torch.", ""))
    kwargs = {"quantization_config": config}
    if args.quantization_device_map != "auto":
        kwargs["device_map"] = {"": current_device()}
    else:
        kwargs["device_map"] = "auto"
    return kwargs


class _OnceFilter(logging.Filter):
    """Lets a log message that starts with ``prefix`` through the first time only."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix, self.seen = prefix, False

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.prefix):
            return True
        seen, self.seen = self.seen, True
        return not seen


def _once(log: logging.Logger, prefix: str) -> None:
    """bitsandbytes logs its 8-bit input cast at every layer call of every step: keep the first line only."""
    if not any(isinstance(f, _OnceFilter) and f.prefix == prefix for f in log.filters):
        log.addFilter(_OnceFilter(prefix))


def quantize_loaded(model, args, path: str, compute_dtype):
    """hqq: replace every linear layer but the output head and task heads by HQQLinear (in place)."""
    if args.quantization_method != "hqq" or args.quantization_bit is None or stored_quantization(path) is not None:
        return model
    import torch
    from hqq.core.quantize import BaseQuantizeConfig, HQQLinear

    config = BaseQuantizeConfig(nbits=args.quantization_bit, group_size=HQQ_GROUP_SIZE, axis=0)
    output = model.get_output_embeddings()
    device = current_device()
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Linear and child is not output and name not in ("score", "classifier"):
                setattr(parent, name, HQQLinear(child, quant_config=config, compute_dtype=compute_dtype,
                                                device=device, del_orig=True))
                count += 1
    model.hqq_quantized = True  # peft's name for an hqq model (prepare_model_for_kbit_training reads it)
    logger.info("Quantizing model to %d bit with HQQ (%d linear layers, group size %d, axis 0)",
                args.quantization_bit, count, HQQ_GROUP_SIZE)
    return model


QUANTIZED_CLASSES = ("Linear4bit", "Linear8bitLt", "HQQLinear", "EetqLinear", "QuantLinear", "WQLinear_GEMM",
                     "QuantizedLinear", "CompressedLinear")


def is_quantized_linear(module) -> bool:
    """A quantized linear layer that is not a torch.nn.Linear subclass (hqq's HQQLinear, GPTQ's QuantLinear...)."""
    return type(module).__name__ in QUANTIZED_CLASSES


def is_quantized(model) -> bool:
    """Whether the model holds quantized layers (loaded with a quantizer, hqq-quantized, or pre-quantized)."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and not getattr(quantizer.quantization_config, "dequantize", False):
        return True
    if getattr(model, "hqq_quantized", False):
        return True
    return any(type(module).__name__ in QUANTIZED_CLASSES for module in model.modules())


def quantized_state(model) -> dict:
    """name -> raw bytes (CPU copies) of every quantized layer's weight as the layer applies it (its output for
    the identity matrix, bias removed) and of its stored tensors: what must stay byte for byte while the adapter
    trains. Taken in training mode: bitsandbytes' CPU backend repacks 4-bit weights into an inference layout in
    eval mode (and back in training mode), which changes their storage but not the weight."""
    import torch

    def raw(tensor):  # bytes: packed 4-bit storage viewed as float holds NaN patterns, never equal to themselves
        return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).clone()

    out = {}
    with torch.no_grad():
        for name, module in model.named_modules():
            if type(module).__name__ not in QUANTIZED_CLASSES or type(module).__module__.startswith("peft."):
                continue  # peft's LoRA wrappers share the class names; their base_layer is the quantized one
            first = next(iter(module.state_dict().values()))
            dtype = getattr(module, "compute_dtype", None) or torch.float32
            eye = torch.eye(module.in_features, dtype=dtype, device=first.device)
            zero = torch.zeros_like(eye[:1])
            mode = module.training
            module.train(True)  # bitsandbytes' CPU backend keeps an inference-only packing in eval mode
            out[f"{name}.applied"] = raw(module(eye) - module(zero))
            for key, value in module.state_dict().items():
                if isinstance(value, torch.Tensor):
                    out[f"{name}.{key}"] = raw(value)
            module.train(mode)
    return out


def describe(model) -> str:
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        method = quantizer.quantization_config.quant_method
        return str(getattr(method, "value", method))
    return "hqq" if getattr(model, "hqq_quantized", False) else "none"


def prepare_for_training(model, finetuning_type: str, checkpointing: dict):
    """k-bit preparation for a quantized base, as peft recommends, without its upcast of every weight: the base
    is frozen, normalisation layers run in float32, and with reentrant activation checkpointing the inputs
    carry gradients (else nothing upstream of the first checkpointed layer needs them). Anything but LoRA is
    refused: the quantized weights cannot train. ``checkpointing``: the run's activation-checkpointing
    TrainingArguments (`gradient_checkpointing`, `gradient_checkpointing_kwargs`)."""
    if not is_quantized(model):
        return model
    import torch

    reentrant = bool(checkpointing.get("gradient_checkpointing")) and bool(
        (checkpointing.get("gradient_checkpointing_kwargs") or {}).get("use_reentrant", True))

    if finetuning_type not in ("lora", "oft"):
        raise ConfigError(f"`finetuning_type: {finetuning_type}` cannot train a quantized model ({describe(model)}): "
                          "its weights are stored in packed low-bit form and have no float copy to update. Use "
                          "`finetuning_type: lora` (QLoRA) or oft, or load the model unquantized (remove "
                          "`quantization_bit`, or use the unquantized checkpoint)")
    for param in model.parameters():
        param.requires_grad_(False)
    upcast = 0
    for module in model.modules():
        if "norm" in type(module).__name__.lower():
            for param in module.parameters(recurse=False):
                if param.dtype in (torch.float16, torch.bfloat16):
                    param.data = param.data.float()
                    upcast += 1
    for module in model.modules():
        if type(module).__name__ == "Linear4bit" and getattr(module, "support_avx512bf16_for_cpu", False):
            # bitsandbytes' CPU backend would repack the weights for inference at the first no-grad eval-mode
            # forward (evaluation), rounding their scales to bfloat16 for the rest of training: keep them as loaded
            module.support_avx512bf16_for_cpu = False
    if reentrant:
        model.enable_input_require_grads()
    logger.info("k-bit training preparation: base frozen, %d normalisation weights upcast to float32%s", upcast,
                ", input gradients on for reentrant checkpointing" if reentrant else "")
    return model


def serving_plan(args, source, merge: bool):
    """(ModelArgs to load the base with, whether it stays quantized) for chat / api (``merge`` false) and export
    (``merge`` true). Export merges adapters onto the de-quantized base: on-the-fly quantization is dropped (the
    base checkpoint is full precision), a pre-quantized base is de-quantized after loading (``dequantized``)."""
    from dataclasses import replace

    trained = ((source.card or {}).get("settings") or {}).get("quantization_bit")
    stored = stored_quantization(source.base)
    args = replace(args, model_name_or_path=source.base, train_from_scratch=False)
    if merge:
        if args.quantization_bit is not None or trained:
            logger.info("merging onto the unquantized base %s: the adapter was trained on a %s-bit copy of it; "
                        "the merged weights are the base's full-precision weights plus the adapter's update",
                        source.base, args.quantization_bit or trained)
        return replace(args, quantization_bit=None), False
    quantized = args.quantization_bit is not None or stored is not None
    if not quantized and trained and source.adapters:
        logger.info("the adapter was trained on a %s-bit quantized base; it is served merged onto the "
                    "full-precision base (set `quantization_bit: %s` to serve it quantized, as trained)",
                    trained, trained)
    return args, quantized


def dequantized(model, path: str, dtype):
    """A pre-quantized checkpoint turned back into plain weights in ``dtype`` (for merging adapters), logged;
    a method transformers cannot de-quantize is a clear error. Other models are returned as they are."""
    if not is_quantized(model):
        return model
    method = stored_method(stored_quantization(path) or {})
    try:
        model = model.dequantize(dtype=dtype) or model
    except (ValueError, NotImplementedError, AttributeError, TypeError) as err:
        raise ConfigError(f"{path} is {method}-quantized and cannot be de-quantized to merge adapters into it "
                          f"({type(err).__name__}: {err}); merge onto the unquantized original instead") from None
    logger.info("de-quantized the %s base %s to %s to merge the adapters (the merged model is full precision; "
                "quantization rounding of the base is kept)", method, path, str(dtype).replace("torch.", ""))
    return _plain_copy(model, dtype)


def _plain_copy(model, dtype):
    """The same weights in a freshly built model whose config has no quantization_config: a de-quantized model
    still carries its loader's weight conversions, which transformers cannot reverse when saving."""
    import copy

    import torch

    config = copy.deepcopy(model.config)
    for key in ("quantization_config", "_pre_quantization_dtype"):
        if key in config.__dict__:
            delattr(config, key)
    with torch.random.fork_rng(devices=[]):
        plain = type(model)(config).to(dtype)
    plain.load_state_dict(model.state_dict(), strict=True)
    plain.generation_config = model.generation_config
    return plain
