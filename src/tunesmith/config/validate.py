"""Cross-field rules, one named function each. Each raises ConfigError naming the keys and the fix."""

from __future__ import annotations

import base64
import binascii
import importlib.util
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .rules_methods import ADAPTER_TYPES, RULES as METHOD_RULES
from .rules_grpo import RULES as GRPO_RULES
from .rules_optimizers import RULES as OPTIMIZER_RULES
from .rules_quantization import EXPORT_RULES as QUANT_EXPORT_RULES
from .rules_quantization import TRAIN_RULES as QUANT_RULES, USE_RULES as QUANT_USE_RULES
from .schema import IMPLEMENTED_BACKENDS, Config
from .unfreeze import parse_schedule
from .rules_evaluation import EXAM_RULES, dataset_is_given, trains_something  # noqa: F401
from .rules_evaluation import RULES as EVALUATION_RULES

Origins = dict[str, str]


def _where(origins: Origins, *keys: str) -> str:
    for key in keys:
        if key in origins:
            return origins[key]
    return "config"


def model_is_given(cfg: Config, origins: Origins) -> None:
    if not cfg.model.model_name_or_path:
        raise ConfigError("config: `model_name_or_path` is required (a local model directory)")


def output_dir_is_given(cfg: Config, origins: Origins) -> None:
    if not cfg.training.get("output_dir"):
        raise ConfigError("config: `output_dir` is required: where the trained model, logs and plots go")


def adapters_only_with_lora(cfg: Config, origins: Origins) -> None:
    if cfg.model.adapter_name_or_path and cfg.finetuning.finetuning_type not in ADAPTER_TYPES:
        raise ConfigError(f"{_where(origins, 'adapter_name_or_path')}: `adapter_name_or_path` needs "
                          f"`finetuning_type: lora` or oft (got {cfg.finetuning.finetuning_type}); merge the adapter "
                          "first to fine-tune it in full or freeze mode")


def lora_values_in_range(cfg: Config, origins: Origins) -> None:
    ft = cfg.finetuning
    if ft.lora_rank <= 0:
        raise ConfigError(f"{_where(origins, 'lora_rank')}: `lora_rank` must be positive, got {ft.lora_rank}")
    if not 0.0 <= ft.lora_dropout < 1.0:
        raise ConfigError(f"{_where(origins, 'lora_dropout')}: `lora_dropout` must be in [0, 1), got {ft.lora_dropout}")
    if ft.lora_alpha is not None and ft.lora_alpha <= 0:
        raise ConfigError(f"{_where(origins, 'lora_alpha')}: `lora_alpha` must be positive, got {ft.lora_alpha}")


def freeze_layers_nonzero(cfg: Config, origins: Origins) -> None:
    if cfg.finetuning.finetuning_type == "freeze" and cfg.finetuning.freeze_trainable_layers == 0:
        raise ConfigError(f"{_where(origins, 'freeze_trainable_layers')}: `freeze_trainable_layers` must be +N "
                          "(train the last N layers) or -N (the first N), not 0")


def data_sizes_positive(cfg: Config, origins: Origins) -> None:
    data = cfg.data
    if data.cutoff_len <= 0:
        raise ConfigError(f"{_where(origins, 'cutoff_len')}: `cutoff_len` must be positive, got {data.cutoff_len}")
    if data.max_samples is not None and data.max_samples <= 0:
        raise ConfigError(f"{_where(origins, 'max_samples')}: `max_samples` must be positive, got {data.max_samples}")
    if data.val_size < 0:
        raise ConfigError(f"{_where(origins, 'val_size')}: `val_size` must be >= 0, got {data.val_size}")
    if data.preprocessing_batch_size <= 0:
        raise ConfigError(f"{_where(origins, 'preprocessing_batch_size')}: must be positive")


def interleave_probs_match(cfg: Config, origins: Origins) -> None:
    probs = cfg.data.interleave_probs
    if not probs:
        return
    if not cfg.data.mix_strategy.startswith("interleave"):
        raise ConfigError(f"{_where(origins, 'interleave_probs')}: `interleave_probs` needs "
                          "`mix_strategy: interleave_under|interleave_over|interleave_once`")
    if len(probs) != len(cfg.data.dataset):
        raise ConfigError(f"{_where(origins, 'interleave_probs')}: {len(probs)} `interleave_probs` for "
                          f"{len(cfg.data.dataset)} datasets; give one probability per dataset")
    if any(p < 0 for p in probs) or abs(sum(probs) - 1.0) > 1e-6:
        raise ConfigError(f"{_where(origins, 'interleave_probs')}: `interleave_probs` must be >= 0 and sum to 1")


def one_precision(cfg: Config, origins: Origins) -> None:
    if cfg.training.get("bf16") and cfg.training.get("fp16"):
        raise ConfigError(f"{_where(origins, 'bf16', 'fp16')}: set only one of `bf16` and `fp16`")


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # e.g. a name too long for the file system
        return False


def _deepspeed_config(value: Any, where: str) -> None:
    """What transformers accepts for `deepspeed`: a mapping, the path of a JSON file, JSON text or base64 JSON text.
    Its "auto" values are filled in by transformers, so they are accepted as they are."""
    if isinstance(value, dict):
        return
    if not isinstance(value, str):
        raise ConfigError(f"{where}: `deepspeed` must be the path of a DeepSpeed JSON config (e.g. "
                          f"examples/deepspeed/ds_z2_config.json) or a mapping, got {value!r}")
    inline = value.lstrip().startswith("{")
    if not inline and _is_file(value):
        try:
            config = json.loads(Path(value).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConfigError(f"{where}: `deepspeed` config {value} is not valid JSON: line {err.lineno}: "
                              f"{err.msg}") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"{where}: `deepspeed` config {value} cannot be read: {err}") from None
    elif inline:
        try:
            config = json.loads(value)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{where}: `deepspeed` JSON text is not valid JSON: {err.msg} at character "
                              f"{err.pos}") from None
    else:
        try:
            config = json.loads(base64.urlsafe_b64decode(value).decode("utf-8"))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise ConfigError(f"{where}: `deepspeed` config file {value} not found (a relative path is read from "
                              f"{Path.cwd()})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: `deepspeed` config {value} must hold a JSON object, got "
                          f"{type(config).__name__}")


def deepspeed_is_usable(cfg: Config, origins: Origins) -> None:
    """`deepspeed` names a config that exists and parses, and the deepspeed package is installed: both known before
    anything loads (the package is looked up, not imported)."""
    value = cfg.training.get("deepspeed")
    if value is None or value is False or value == "":
        return
    where = _where(origins, "deepspeed")
    _deepspeed_config(value, where)
    try:
        installed = importlib.util.find_spec("deepspeed") is not None
    except (ImportError, ValueError):
        installed = False
    if not installed:
        raise ConfigError(f"{where}: `deepspeed` is set but the deepspeed package is not installed; install it with "
                          "`pip install deepspeed`, or remove `deepspeed` to train without it")


_POSITIVE, _STEPS = (lambda v: v > 0, "positive"), (lambda v: v > 0, "positive: a count of steps, or a fraction of "
                                                                      "the run's steps below 1")
# TrainingArguments values: key -> (test, what it must be). A value that is not a finite number fails too.
TRAINING_VALUES: dict[str, tuple[Callable[[float], bool], str]] = {
    "per_device_train_batch_size": _POSITIVE, "per_device_eval_batch_size": _POSITIVE,
    "gradient_accumulation_steps": _POSITIVE, "eval_accumulation_steps": _POSITIVE,
    "torch_empty_cache_steps": _POSITIVE,
    "max_steps": (lambda v: v >= 0 or v == -1, "a positive number of steps, or -1 (unset: `num_train_epochs` "
                                               "decides)"),
    "num_train_epochs": (lambda v: v >= 0, ">= 0"),
    "learning_rate": (lambda v: v >= 0, ">= 0"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "max_grad_norm": (lambda v: v >= 0, ">= 0 (0 turns gradient clipping off)"),
    "warmup_steps": (lambda v: v >= 0, ">= 0: a count of steps, or a fraction of the run's steps below 1"),
    "logging_steps": _STEPS, "save_steps": _STEPS, "eval_steps": _STEPS,
    "save_total_limit": (lambda v: v > 0, "a positive number of checkpoints to keep (leave it out, or null, to "
                                          "keep them all)"),
    "adam_beta1": (lambda v: 0 <= v < 1, "in [0, 1)"), "adam_beta2": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "adam_epsilon": (lambda v: v >= 0, ">= 0"), "label_smoothing_factor": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "eval_delay": (lambda v: v >= 0, ">= 0"), "dataloader_num_workers": (lambda v: v >= 0, ">= 0"),
}


def training_values_in_range(cfg: Config, origins: Origins) -> None:
    """Negative, zero, nan or infinite values that transformers would read as something else (max_steps: -5 as
    "train by epochs") or fail on with a traceback (learning_rate: nan), and counts that contradict each other."""
    for key, (ok, want) in TRAINING_VALUES.items():
        value = cfg.training.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not (math.isfinite(value)
                                                                                    and ok(value)):
            raise ConfigError(f"{_where(origins, key)}: `{key}` must be {want}, got "
                              f"{value if isinstance(value, int) else format(value, 'g')}")
    steps, epochs = cfg.training.get("max_steps", -1), cfg.training.get("num_train_epochs", 3.0)
    if steps <= 0 and epochs <= 0:
        raise ConfigError(f"{_where(origins, 'num_train_epochs', 'max_steps')}: set `num_train_epochs` > 0 "
                          "or `max_steps` > 0")
    warmup = cfg.training.get("warmup_steps") or 0
    if steps > 0 and warmup >= 1 and warmup >= steps:
        raise ConfigError(f"{_where(origins, 'warmup_steps', 'warmup_ratio')}: `warmup_steps` ({warmup:g}) is not "
                          f"below `max_steps` ({steps}): the learning rate would still be warming up when training "
                          "stops; lower it, or give a fraction of the steps below 1")


def token_budget_fits(cfg: Config, origins: Origins) -> None:
    budget = cfg.speed.max_tokens_per_batch
    if not budget:
        return
    where = _where(origins, "max_tokens_per_batch")
    if budget < cfg.data.cutoff_len:
        raise ConfigError(f"{where}: `max_tokens_per_batch` ({budget}) must be at least `cutoff_len` "
                          f"({cfg.data.cutoff_len}), or every long example would exceed it")
    if cfg.data.streaming:
        raise ConfigError(f"{where}: `max_tokens_per_batch` needs the data in memory, not `streaming: true` "
                          "(batches are formed from every example's length)")
    if cfg.stage == "ppo":
        raise ConfigError(f"{where}: `max_tokens_per_batch` does not apply to stage ppo (rollout batches are "
                          "counted in prompts)")


def streaming_needs_max_steps(cfg: Config, origins: Origins) -> None:
    if cfg.data.streaming and cfg.training.get("max_steps", -1) <= 0:
        raise ConfigError(f"{_where(origins, 'streaming')}: `streaming: true` needs `max_steps` > 0 "
                          "(a stream has no known length, so epochs cannot be counted)")


def unfreeze_schedule_readable(cfg: Config, origins: Origins) -> None:
    """Syntax only: whether a module name exists is known once the model is loaded (train/schedule.py)."""
    try:
        parse_schedule(cfg.tokens.unfreeze_schedule)
    except ConfigError as err:
        raise ConfigError(f"{_where(origins, 'unfreeze_schedule')}: {err}") from None


def token_training_modes_fit(cfg: Config, origins: Origins) -> None:
    tokens = cfg.tokens
    if tokens.unfreeze_schedule and cfg.finetuning.finetuning_type != "full":
        raise ConfigError(f"{_where(origins, 'unfreeze_schedule')}: `unfreeze_schedule` decides what trains, so it "
                          f"needs `finetuning_type: full` (got {cfg.finetuning.finetuning_type})")
    if tokens.unfreeze_schedule and tokens.train_new_tokens_only:
        raise ConfigError(f"{_where(origins, 'train_new_tokens_only')}: use either `train_new_tokens_only` or "
                          "`unfreeze_schedule` (write `new_tokens@0` in the schedule for the same start)")
    for key in ("freeze_extra_id_steps", "freeze_token_steps", "add_extra_id_tokens", "resize_vocab_multiple"):
        if getattr(tokens, key) < 0:
            raise ConfigError(f"{_where(origins, key)}: `{key}` must be >= 0")


def preference_values_in_range(cfg: Config, origins: Origins) -> None:
    pref = cfg.preference
    if pref.pref_beta <= 0:
        raise ConfigError(f"{_where(origins, 'pref_beta')}: `pref_beta` must be positive, got {pref.pref_beta}")
    if pref.pref_ftx < 0:
        raise ConfigError(f"{_where(origins, 'pref_ftx')}: `pref_ftx` must be >= 0, got {pref.pref_ftx}")
    if not 0 <= pref.dpo_label_smoothing < 0.5:
        raise ConfigError(f"{_where(origins, 'dpo_label_smoothing')}: `dpo_label_smoothing` must be in [0, 0.5), "
                          f"got {pref.dpo_label_smoothing}")
    if pref.dpo_label_smoothing and pref.pref_loss != "sigmoid":
        raise ConfigError(f"{_where(origins, 'dpo_label_smoothing')}: `dpo_label_smoothing` applies to "
                          f"`pref_loss: sigmoid` only (got {pref.pref_loss})")
    if pref.ld_alpha is not None and not 0 <= pref.ld_alpha <= 1:
        raise ConfigError(f"{_where(origins, 'ld_alpha')}: `ld_alpha` must be in [0, 1], got {pref.ld_alpha}")
    for key in ("kto_chosen_weight", "kto_rejected_weight"):
        if getattr(pref, key) < 0:
            raise ConfigError(f"{_where(origins, key)}: `{key}` must be >= 0")


def reference_options_fit(cfg: Config, origins: Origins) -> None:
    pref = cfg.preference
    reference_free = cfg.stage == "dpo" and pref.pref_loss in ("orpo", "simpo")
    uses_reference = cfg.stage in ("kto", "ppo") or (cfg.stage == "dpo" and not reference_free) or \
        (cfg.stage == "grpo" and cfg.grpo.beta > 0)
    if pref.ref_model_adapters and not pref.ref_model:
        raise ConfigError(f"{_where(origins, 'ref_model_adapters')}: `ref_model_adapters` needs `ref_model` "
                          "(the model the adapters belong to)")
    for key in ("ref_model", "precompute_ref_log_probs"):
        if getattr(pref, key) and not uses_reference and not cfg.finetuning.use_asft_loss:
            why = (f"`pref_loss: {pref.pref_loss}` is reference-free" if reference_free
                   else f"stage {cfg.stage} uses no reference model{' with beta 0' * (cfg.stage == 'grpo')}")
            raise ConfigError(f"{_where(origins, key)}: `{key}` is set but {why}; remove it")
    if cfg.stage in ("ppo", "grpo") and pref.precompute_ref_log_probs:
        raise ConfigError(f"{_where(origins, 'precompute_ref_log_probs')}: `precompute_ref_log_probs` does not apply "
                          f"to {cfg.stage}: its replies are generated during training, so nothing can be scored in "
                          "advance; remove it")


def precomputed_reference_in_memory(cfg: Config, origins: Origins) -> None:
    if cfg.preference.precompute_ref_log_probs and cfg.data.streaming:
        raise ConfigError(f"{_where(origins, 'precompute_ref_log_probs', 'streaming')}: `precompute_ref_log_probs` "
                          "needs the data in memory (not `streaming: true`); remove one of the two")


def token_weights_fit_stage(cfg: Config, origins: Origins) -> None:
    tokens = cfg.tokens
    weighted = tokens.token_loss_weights or tokens.extra_id_loss_weight is not None
    if not weighted:
        return
    key = "token_loss_weights" if tokens.token_loss_weights else "extra_id_loss_weight"
    if cfg.stage == "rm":
        raise ConfigError(f"{_where(origins, key)}: `{key}` weights token losses, and stage rm has none (it scores "
                          "whole sequences)")
    if cfg.stage in ("dpo", "kto") and cfg.preference.pref_ftx <= 0:
        raise ConfigError(f"{_where(origins, key)}: in stage {cfg.stage}, `{key}` weights the SFT term on the "
                          "chosen replies; set `pref_ftx` > 0 to have one")


def accuracy_needs_evaluation(cfg: Config, origins: Origins) -> None:
    if not cfg.finetuning.compute_accuracy:
        return
    where = _where(origins, "compute_accuracy")
    if cfg.stage not in ("sft", "pt"):
        raise ConfigError(f"{where}: `compute_accuracy` reports next-token accuracy of sft/pt; stage {cfg.stage} "
                          "logs its own accuracy (rewards/accuracies for rm and dpo); remove the key")
    if not (cfg.data.val_size > 0 or cfg.data.eval_dataset):
        raise ConfigError(f"{where}: `compute_accuracy` is measured at evaluation; set `val_size` or "
                          "`eval_dataset` (with `eval_strategy: steps` or `epoch`)")


def backend_is_implemented(cfg: Config, origins: Origins) -> None:
    if cfg.infer.infer_backend not in IMPLEMENTED_BACKENDS:
        raise ConfigError(f"{_where(origins, 'infer_backend')}: `infer_backend: {cfg.infer.infer_backend}` is not "
                          f"available in tunesmith; use {' or '.join(IMPLEMENTED_BACKENDS)}")


def generating_values_in_range(cfg: Config, origins: Origins) -> None:
    gen = cfg.generating
    checks = (("temperature", gen.temperature >= 0, ">= 0"), ("top_p", 0 < gen.top_p <= 1, "in (0, 1]"),
              ("top_k", gen.top_k >= 0, ">= 0"), ("num_beams", gen.num_beams >= 1, ">= 1"),
              ("repetition_penalty", gen.repetition_penalty > 0, "> 0"),
              ("max_new_tokens", gen.max_new_tokens > 0 or gen.max_length > 0, "> 0 (or set max_length > 0)"))
    for key, ok, want in checks:
        if not ok:
            raise ConfigError(f"{_where(origins, key)}: `{key}` must be {want}, got {getattr(gen, key)!r}")
    if cfg.infer.infer_max_batch < 1:
        raise ConfigError(f"{_where(origins, 'infer_max_batch')}: `infer_max_batch` must be >= 1, got "
                          f"{cfg.infer.infer_max_batch!r}")


def vllm_config_is_mapping(cfg: Config, origins: Origins) -> None:
    value = cfg.infer.vllm_config
    if value is None or isinstance(value, dict):
        return
    if isinstance(value, str):
        import json

        try:
            if isinstance(json.loads(value), dict):
                return
        except json.JSONDecodeError:
            pass
    raise ConfigError(f"{_where(origins, 'vllm_config')}: `vllm_config` must be a mapping or a JSON object string, "
                      f"got {value!r}")


def api_port_in_range(cfg: Config, origins: Origins) -> None:
    port = cfg.api.api_port
    if port is not None and not 0 <= port <= 65535:
        raise ConfigError(f"{_where(origins, 'api_port')}: `api_port` must be in 0..65535, got {port}")


def export_dir_is_given(cfg: Config, origins: Origins) -> None:
    if not cfg.export.export_dir:
        raise ConfigError("config: `export_dir` is required: where the merged model is written")


def export_options_supported(cfg: Config, origins: Origins) -> None:
    export = cfg.export
    if export.export_size <= 0:
        raise ConfigError(f"{_where(origins, 'export_size')}: `export_size` (GB per shard) must be positive, "
                          f"got {export.export_size}")
    if export.export_legacy_format:
        raise ConfigError(f"{_where(origins, 'export_legacy_format')}: `export_legacy_format: true` (.bin files) is "
                          "not available: transformers 5 writes safetensors only; set it to false")
    if export.export_hub_model_id:
        raise ConfigError(f"{_where(origins, 'export_hub_model_id')}: tunesmith never uploads; remove "
                          "`export_hub_model_id` and push export_dir yourself (e.g. `huggingface-cli upload`)")


def reward_model_fits(cfg: Config, origins: Origins) -> None:
    ppo = cfg.ppo
    if cfg.stage == "grpo" and not ppo.reward_model:
        return  # grpo's rewards may all be functions (config/rules_grpo.py)
    if cfg.stage not in ("ppo", "grpo"):
        for key in ("reward_model", "reward_model_adapters"):
            if getattr(ppo, key):
                raise ConfigError(f"{_where(origins, key)}: `{key}` is set but only ppo and grpo use it; remove it")
        return
    where = _where(origins, "reward_model", "reward_model_type")
    if not ppo.reward_model:
        raise ConfigError(f"{where}: stage ppo needs `reward_model`: a reward lora adapter (reward_model_type: lora), "
                          "a reward model directory (full) or the URL of a scoring endpoint (api)")
    kind = ppo.reward_model_type
    if kind == "lora" and cfg.finetuning.finetuning_type != "lora":
        raise ConfigError(f"{where}: `reward_model_type: lora` puts the reward adapter on the policy's own base "
                          f"weights, which needs `finetuning_type: lora` (got {cfg.finetuning.finetuning_type}); "
                          "use `reward_model_type: full` (or api)")
    is_url = ppo.reward_model.startswith(("http://", "https://"))
    if kind == "api" and not is_url:
        raise ConfigError(f"{where}: `reward_model_type: api` needs `reward_model` to be an http(s) URL, got "
                          f"{ppo.reward_model!r}")
    if kind != "api" and is_url:
        raise ConfigError(f"{where}: `reward_model` {ppo.reward_model} is a URL; set `reward_model_type: api`")
    if ppo.reward_model_adapters and kind != "full":
        raise ConfigError(f"{_where(origins, 'reward_model_adapters')}: `reward_model_adapters` apply to a "
                          f"`reward_model_type: full` reward model (got {kind})")


def ppo_values_in_range(cfg: Config, origins: Origins) -> None:
    if cfg.stage != "ppo":
        return
    ppo, gen = cfg.ppo, cfg.generating
    for key in ("ppo_epochs", "ppo_buffer_size"):
        if getattr(ppo, key) < 1:
            raise ConfigError(f"{_where(origins, key)}: `{key}` must be >= 1, got {getattr(ppo, key)}")
    if ppo.ppo_target <= 0:
        raise ConfigError(f"{_where(origins, 'ppo_target')}: `ppo_target` must be positive, got {ppo.ppo_target}")
    if gen.max_new_tokens <= 0 and gen.max_length <= 0:
        raise ConfigError(f"{_where(origins, 'max_new_tokens', 'max_length')}: set `max_new_tokens` > 0 (or "
                          "`max_length` > 0): the length of the generated replies")
    if gen.num_beams != 1:
        raise ConfigError(f"{_where(origins, 'num_beams')}: ppo samples its replies; `num_beams` must be 1")
    if gen.do_sample and gen.temperature <= 0:
        raise ConfigError(f"{_where(origins, 'temperature')}: `temperature` must be positive when sampling "
                          f"(got {gen.temperature}); set `do_sample: false` for greedy replies")
    if not 0 < gen.top_p <= 1:
        raise ConfigError(f"{_where(origins, 'top_p')}: `top_p` must be in (0, 1], got {gen.top_p}")


def ppo_starts_fresh(cfg: Config, origins: Origins) -> None:
    if cfg.stage == "ppo" and cfg.training.get("resume_from_checkpoint") not in (None, False, ""):
        raise ConfigError(f"{_where(origins, 'resume_from_checkpoint')}: `resume_from_checkpoint` is not available "
                          "for stage ppo; start a new run (a PPO checkpoint holds the policy and value head, usable "
                          "as a starting model)")


def ppo_options_fit(cfg: Config, origins: Origins) -> None:
    """What a PPO run cannot do: it reads prompts from memory and has no evaluation split or packing."""
    if cfg.stage != "ppo":
        return
    data, tokens = cfg.data, cfg.tokens
    for key, on in (("streaming", data.streaming), ("val_size", data.val_size > 0),
                    ("eval_dataset", bool(data.eval_dataset)), ("packing", bool(data.packing or data.neat_packing))):
        if on:
            raise ConfigError(f"{_where(origins, key)}: `{key}` is not available with stage ppo (prompts are read "
                              "into memory, and a PPO run has no evaluation split); remove it")
    for key in ("unfreeze_schedule", "train_new_tokens_only", "freeze_extra_id_steps", "freeze_token_steps",
                "token_loss_weights", "extra_id_loss_weight"):
        if getattr(tokens, key) not in ((), {}, 0, False, None):
            raise ConfigError(f"{_where(origins, key)}: `{key}` is not available with stage ppo")


RULES: tuple[Callable[[Config, Origins], None], ...] = (
    model_is_given,
    output_dir_is_given,
    trains_something,
    dataset_is_given,
    adapters_only_with_lora,
    lora_values_in_range,
    *METHOD_RULES,
    freeze_layers_nonzero,
    data_sizes_positive,
    interleave_probs_match,
    one_precision,
    deepspeed_is_usable,
    training_values_in_range,
    *OPTIMIZER_RULES,
    streaming_needs_max_steps,
    token_budget_fits,
    unfreeze_schedule_readable,
    token_training_modes_fit,
    preference_values_in_range,
    reference_options_fit,
    *QUANT_RULES,
    precomputed_reference_in_memory,
    token_weights_fit_stage,
    accuracy_needs_evaluation,
    reward_model_fits,
    ppo_values_in_range,
    ppo_options_fit,
    ppo_starts_fresh, *GRPO_RULES,
    *EVALUATION_RULES,
)


# Rules that only matter when a run trains and writes (not for `tunesmith data preview`).
TRAINING_ONLY = (output_dir_is_given, trains_something, ppo_starts_fresh, deepspeed_is_usable)

# chat / api / export use a trained model: no data, no training rules.
USING_A_MODEL = (model_is_given, backend_is_implemented, generating_values_in_range,
                 vllm_config_is_mapping, api_port_in_range)
PURPOSES: dict[str, tuple[Callable[[Config, Origins], None], ...]] = {
    "train": RULES,
    "data": tuple(rule for rule in RULES if rule not in TRAINING_ONLY),
    "infer": USING_A_MODEL + QUANT_USE_RULES,
    "exam": USING_A_MODEL + EXAM_RULES,
    "export": USING_A_MODEL + (export_dir_is_given, export_options_supported) + QUANT_USE_RULES
    + QUANT_EXPORT_RULES,
}


def validate(cfg: Config, origins: Origins, for_training: bool = True, purpose: str | None = None) -> None:
    """``purpose``: train | data | infer | export (default: train, or data when ``for_training`` is false)."""
    for rule in PURPOSES[purpose or ("train" if for_training else "data")]:
        rule(cfg, origins)
