"""Quantization rules, checked before any model loads (LLaMA-Factory's refusals, and seed 001: LoRA may stack
several adapters and merge them, QLoRA takes exactly one)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

from .errors import ConfigError
from .schema import Config

Origins = dict[str, str]
METHOD_BITS = {"bnb": (4, 8), "hqq": (1, 2, 3, 4, 5, 6, 8), "eetq": (8,)}
EXPORT_BITS = (2, 3, 4, 8)
ADAPTERS = ("lora", "oft")  # adapters train beside frozen quantized weights (as in LLaMA-Factory)


def _where(origins: Origins, *keys: str) -> str:
    return next((origins[key] for key in keys if key in origins), "config")


def stored_quant_method(path: str | None) -> str | None:
    """The quant_method of a local pre-quantized checkpoint (config.json's quantization_config), else None (hub
    ids are checked once loaded)."""
    config = Path(path or "") / "config.json"
    if not path or not config.is_file():
        return None
    try:
        stored = json.loads(config.read_text(encoding="utf-8")).get("quantization_config")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(stored, dict) or not stored:
        return None
    method = str(stored.get("quant_method") or "bitsandbytes")
    return None if method in ("fp8", "mxfp4") else method  # loaded de-quantized (model/quantize.py)


def quantization(cfg: Config) -> str | None:
    """What quantizes the model: `<bits>-bit <method>`, `pre-quantized <method>`, or None."""
    stored = stored_quant_method(cfg.model.model_name_or_path)
    if stored:
        return f"pre-quantized {stored}"
    if cfg.model.quantization_bit is not None:
        return f"{cfg.model.quantization_bit}-bit {cfg.model.quantization_method}"
    return None


def quantization_bits_fit(cfg: Config, origins: Origins) -> None:
    method = cfg.model.quantization_method
    for key, bits in (("quantization_bit", cfg.model.quantization_bit),
                      ("ref_model_quantization_bit", cfg.preference.ref_model_quantization_bit),
                      ("reward_model_quantization_bit", cfg.ppo.reward_model_quantization_bit)):
        if bits is not None and bits not in METHOD_BITS[method]:
            raise ConfigError(f"{_where(origins, key, 'quantization_method')}: `{key}: {bits}` is not available with "
                              f"`quantization_method: {method}`, which quantizes to "
                              f"{', '.join(map(str, METHOD_BITS[method]))} bits")


PACKAGES = {"bnb": "bitsandbytes", "hqq": "hqq"}  # what on-the-fly quantization imports (eetq: at load, CUDA)


def quantization_package_installed(cfg: Config, origins: Origins) -> None:
    """Before any data is read or weights load: the backend's package (LLaMA-Factory checks it at load time)."""
    bits = (cfg.model.quantization_bit, cfg.preference.ref_model_quantization_bit,
            cfg.ppo.reward_model_quantization_bit)
    package = PACKAGES.get(cfg.model.quantization_method)
    if any(b is not None for b in bits) and package and importlib.util.find_spec(package) is None:
        raise ConfigError(f"{_where(origins, 'quantization_bit', 'quantization_method')}: `quantization_method: "
                          f"{cfg.model.quantization_method}` needs {package}, which is not installed: `pip install "
                          f"{package}` (or `pip install 'tunesmith[quantization]'`)")


def quantized_model_trains_lora(cfg: Config, origins: Origins) -> None:
    """Only LoRA trains on a quantized base, with at most one adapter (seed 001), not a new one over it."""
    what = quantization(cfg)
    if what is None:
        return
    ft = cfg.finetuning.finetuning_type
    where = _where(origins, "quantization_bit", "model_name_or_path")
    if ft not in ADAPTERS:
        raise ConfigError(f"{_where(origins, 'finetuning_type')}: `finetuning_type: {ft}` cannot train a {what} model: "
                          "quantized weights are stored in packed low-bit form and have no float copy to update. Use "
                          "`finetuning_type: lora` (QLoRA) or oft, or load the model unquantized (remove "
                          "`quantization_bit`, or start from the unquantized checkpoint)")
    adapters = cfg.model.adapter_name_or_path
    if len(adapters) > 1:
        raise ConfigError(f"{_where(origins, 'adapter_name_or_path')}: a quantized model ({what}) takes exactly one "
                          f"adapter, got {len(adapters)} ({', '.join(adapters)}): adapters cannot be merged into "
                          "quantized weights. Merge them first (`tunesmith export` on the unquantized base), then "
                          "train QLoRA on the merged model")
    if adapters and cfg.finetuning.create_new_adapter:
        raise ConfigError(f"{_where(origins, 'create_new_adapter')}: `create_new_adapter` would merge "
                          f"{adapters[0]} into the quantized weights of a {what} model, which cannot hold it; "
                          "resume training that adapter (remove create_new_adapter), or merge it first")
    if cfg.model.train_from_scratch:
        raise ConfigError(f"{where}: `train_from_scratch` trains every weight, which a quantized model cannot")
    if cfg.model.quantization_device_map == "auto":
        raise ConfigError(f"{_where(origins, 'quantization_device_map')}: `quantization_device_map: auto` is for "
                          "inference (chat, api, export); remove it to train (the model is placed on this "
                          "process's device)")
    bnb4 = cfg.model.quantization_method == "bnb" and cfg.model.quantization_bit == 4
    for key in ("deepspeed", "fsdp"):
        if cfg.training.get(key) and cfg.model.quantization_bit is not None and not bnb4:
            raise ConfigError(f"{_where(origins, key)}: `{key}` cannot shard a {what} model; only 4-bit bnb "
                              "(QLoRA) shards")


def device_map_fits(cfg: Config, origins: Origins) -> None:
    model = cfg.model
    if model.quantization_device_map == "auto" and model.quantization_bit is not None and (
            model.quantization_method != "bnb" or model.quantization_bit != 4):
        raise ConfigError(f"{_where(origins, 'quantization_device_map')}: `quantization_device_map: auto` needs "
                          "4-bit bnb quantization (`quantization_bit: 4`, `quantization_method: bnb`)")


def export_quantization_fits(cfg: Config, origins: Origins) -> None:
    export = cfg.export
    if export.export_quantization_bit is None:
        return
    where = _where(origins, "export_quantization_bit")
    if export.export_quantization_bit not in EXPORT_BITS:
        raise ConfigError(f"{where}: `export_quantization_bit` must be one of 2, 3, 4, 8 (GPTQ), got "
                          f"{export.export_quantization_bit}")
    if not export.export_quantization_dataset:
        raise ConfigError(f"{where}: `export_quantization_bit` needs `export_quantization_dataset` (a text file or hub "
                          "dataset with a `text` column to calibrate on)")
    if export.export_quantization_nsamples < 1 or export.export_quantization_maxlen < 1:
        raise ConfigError(f"{where}: `export_quantization_nsamples` and `export_quantization_maxlen` must be positive")
    if cfg.model.quantization_bit is not None:
        raise ConfigError(f"{where}: export quantizes the merged full-precision model; remove `quantization_bit` "
                          "(adapters are merged onto the unquantized base)")


TRAIN_RULES: tuple[Callable[[Config, Origins], None], ...] = (
    quantization_bits_fit, quantized_model_trains_lora, device_map_fits, quantization_package_installed)
USE_RULES: tuple[Callable[[Config, Origins], None], ...] = (quantization_bits_fit, device_map_fits,
                                                           quantization_package_installed)
EXPORT_RULES: tuple[Callable[[Config, Origins], None], ...] = (export_quantization_fits,)
