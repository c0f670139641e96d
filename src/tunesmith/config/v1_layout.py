"""LLaMA-Factory's v1 config layout (`USE_V1=1 llamafactory-cli train`: `model:`, `peft_config:`, `dist_config:`,
`train_dataset:`, `micro_batch_size:`, ...) is recognised and answered with the v0 flat keys tunesmith reads, key by
key; nothing is translated silently. Key names follow LLaMA-Factory's src/llamafactory/v1/config/*.py and its v1
plugins (peft: lora / freeze; dist: fsdp2 / deepspeed / fsdpturbo; optim: muon)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


def show(value: Any) -> str:
    """A value as it would be written in flow-style YAML."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _as(key: str) -> Callable[[Any], str]:
    return lambda value: f"{key}: {show(value)}"


def _say(text: str) -> Callable[[Any], str]:
    return lambda value: text


def _plugin(value: Any) -> tuple[str | None, dict[str, Any]]:
    if isinstance(value, dict):
        rest = {k: v for k, v in value.items() if k != "name"}
        return (str(value["name"]) if "name" in value else None), rest
    return (str(value) if value is not None else None), {}


LORA_KEYS = {"r": "lora_rank", "lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout",
             "target_modules": "lora_target", "use_rslora": "use_rslora", "use_dora": "use_dora",
             "modules_to_save": "additional_target", "adapter_name_or_path": "adapter_name_or_path",
             "export_dir": "export_dir", "export_size": "export_size", "export_hub_model_id": "export_hub_model_id",
             "infer_dtype": "infer_dtype", "export_legacy_format": "export_legacy_format"}
FREEZE_KEYS = {"freeze_trainable_layers": "freeze_trainable_layers",
               "freeze_trainable_modules": "freeze_trainable_modules", "freeze_extra_modules": "freeze_extra_modules"}


def _peft(value: Any) -> str:
    name, rest = _plugin(value)
    names = {"lora": LORA_KEYS, "freeze": FREEZE_KEYS}.get(name or "")
    if names is None:
        return f"finetuning_type: lora, freeze or full (no peft method {name!r})"
    parts = [f"finetuning_type: {name}"] + [f"{names[k]}: {show(v)}" for k, v in rest.items() if k in names]
    dropped = [k for k in rest if k not in names]
    return ", ".join(parts) + (f" ({', '.join(dropped)}: no counterpart)" if dropped else "")


def _dist(value: Any) -> str:
    name, rest = _plugin(value)
    launch = "; launch with `torchrun --nproc_per_node N` or `accelerate launch`"
    if name == "deepspeed":
        config = rest.get("config_file")
        return f"deepspeed: {show(config) if config else '<a ZeRO JSON config>'}{launch}"
    if name == "fsdp2":
        return f"fsdp: true (transformers' FSDP, options in `fsdp_config`){launch}"
    return f"no counterpart for {name!r}: use `deepspeed` or `fsdp`{launch}"


def _optim(value: Any) -> str:
    name, rest = _plugin(value)
    parts = [f"weight_decay: {show(v)}" for k, v in rest.items() if k in ("wd", "weight_decay")]
    return ", ".join([f"optim: <a transformers optimizer, e.g. adamw_torch> (the {name} optimizer is not "
                      "available)", *parts])


def _scheduler(value: Any) -> str:
    name, rest = _plugin(value)
    return f"lr_scheduler_type: <a transformers scheduler, e.g. {name}>" + (
        f", lr_scheduler_kwargs: {show(rest)}" if rest else "")


def _batching(value: Any) -> str:
    name = str(value)
    if name in ("padding_free", "dynamic_padding_free"):
        return "packing: true (sequences share rows and never attend to each other)" + (
            ", max_tokens_per_batch: <tokens>" if name.startswith("dynamic") else "")
    if name == "dynamic_batching":
        return "max_tokens_per_batch: <tokens per micro-batch> (token-budget batching of unpacked data)"
    return "remove it (plain batches are the default)"


def _train_dataset(value: Any) -> str:
    names: list[str] = []
    path = Path(str(value))
    if path.suffix in (".yaml", ".yml") and path.is_file():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            data = None
        names = [str(k) for k in data] if isinstance(data, dict) else []
    if names:
        return (f"dataset: {', '.join(names)} (entries of <dataset_dir>/dataset_info.json; "
                f"{value} itself is not read)")
    return "dataset: <names from <dataset_dir>/dataset_info.json> (v1 dataset files are not read)"


def _model(value: Any) -> str:
    if isinstance(value, dict):
        return f"write its keys at the top level ({show(value)}); keys are flat"
    return f"model_name_or_path: {show(value)}"


def _sample_backend(value: Any) -> str:
    return f"infer_backend: {'huggingface' if str(value) == 'hf' else show(value)} (tunesmith chat / api)"


TRANSLATIONS: dict[str, Callable[[Any], str]] = {
    "model": _model,
    "model_class": _say("remove it: tunesmith fine-tunes causal language models (llm)"),
    "custom_chat_template": _say("no inline Jinja: leave `template` unset to use the tokenizer's own chat_template, "
                                 "or name a built-in `template`"),
    "init_config": _say("remove it (`train_from_scratch: true` starts from random weights)"),
    "peft_config": _peft,
    "kernel_config": _say("remove it: tunesmith picks its kernels (`flash_attn: auto`, `chunked_loss`, "
                          "`compile_layers`)"),
    "quant_config": _say("no counterpart: quantisation is not available in tunesmith"),
    "train_dataset": _train_dataset,
    "micro_batch_size": _as("per_device_train_batch_size"),
    "global_batch_size": lambda v: (f"gradient_accumulation_steps: {show(v)} / (per_device_train_batch_size x "
                                    "number of GPUs)"),
    "batching_strategy": _batching,
    "batching_workers": _as("dataloader_num_workers"),
    "enable_activation_checkpointing": _as("gradient_checkpointing"),
    "dist_config": _dist,
    "dp_size": _say("remove it: every launched process is a data-parallel rank"),
    "cp_size": _say("no counterpart: context parallelism is not available"),
    "cp_mode": _say("no counterpart: context parallelism is not available"),
    "mp_replicate_size": _say("remove it: `deepspeed` / `fsdp` shard across all processes"),
    "mp_shard_size": _say("remove it: `deepspeed` / `fsdp` shard across all processes"),
    "dist_timeout": _as("ddp_timeout"),
    "optim_config": _optim,
    "lr_scheduler_config": _scheduler,
    "save_epochs": lambda v: "save_strategy: epoch" + ("" if v == 1 else " (a checkpoint every epoch; every "
                                                                          f"{show(v)} epochs has no counterpart)"),
    "save_ckpt_as_hf": _say("remove it: checkpoints are transformers / peft checkpoints"),
    "sample_backend": _sample_backend,
}
V1_KEYS = frozenset(TRANSLATIONS)

# (v1 key, v0 key, v1's default) where v1 and transformers' TrainingArguments defaults differ.
V1_DEFAULTS = (("bf16", "bf16", "true"), ("enable_activation_checkpointing", "gradient_checkpointing", "true"),
               ("micro_batch_size", "per_device_train_batch_size", "1"), ("learning_rate", "learning_rate", "1.0e-4"),
               ("logging_steps", "logging_steps", "1"), ("lr_scheduler_config", "lr_scheduler_type", "constant"))


def use_v1_set() -> bool:
    return os.environ.get("USE_V1", "").strip().lower() in ("1", "true", "y", "yes", "on")


def describe_v1(values: dict[str, Any]) -> list[str]:
    """Each v1 key with its v0 counterpart."""
    return [f"  {key}: {show(value)}  ->  {'remove it' if value is None else TRANSLATIONS[key](value)}"
            for key, value in values.items()]


def v1_needs(values: dict[str, Any], present: set[str]) -> list[str]:
    """The v0 keys a v1 config (its v1 keys ``values``, all its keys ``present``) still needs, and v1's defaults
    that v0 does not share."""
    needs, lines = [], []
    if "dataset" not in present and "train_dataset" not in values:
        needs.append("`dataset` (names from <dataset_dir>/dataset_info.json)")
    if "stage" not in present:
        needs.append("`stage` (sft unless set; dpo, kto or rm for preference data)")
    if needs:
        lines.append(f"  v0 also reads: {'; '.join(needs)}")
    defaults = [f"{v0}: {value}" for v1, v0, value in V1_DEFAULTS if v1 not in values and v0 not in present]
    if defaults:
        lines.append(f"  v1 defaults that v0 does not share, to keep them: {', '.join(defaults)}")
    return lines


def v1_heading(origin: str) -> str:
    env = " (USE_V1=1 is set; tunesmith ignores it)" if use_v1_set() else " (LLaMA-Factory runs it with USE_V1=1)"
    return f"{origin}: this is LLaMA-Factory's v1 layout{env}; tunesmith reads the v0 flat keys:"
