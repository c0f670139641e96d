"""Config rules of the optimizer keys (GaLore, APOLLO, BAdam, Adam-mini, Muon, LoRA+ and `optim`): checked before
anything loads, each naming the keys and what to do instead. LLaMA-Factory's own refusals are kept (LoRA with
GaLore/APOLLO/BAdam, two of them at once, layer-wise steps with gradient accumulation, GaLore/APOLLO with DeepSpeed,
LoRA+ without LoRA); tunesmith adds the combinations LLaMA-Factory would run wrongly or silently ignore."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable

from .errors import ConfigError
from .schema import Config

Origins = dict[str, str]
EXTRA = "pip install 'tunesmith[optimizers]'"

# `optim` values -> (import name, how to install it); values that need hardware tunesmith does not run on -> None
OPTIM_PACKAGES: dict[str, tuple[str, str] | None] = {
    **dict.fromkeys(("adamw_bnb_8bit", "adamw_8bit", "ademamix", "ademamix_8bit", "lion_8bit", "lion_32bit",
                     "paged_adamw_32bit", "paged_adamw_8bit", "paged_ademamix_32bit", "paged_ademamix_8bit",
                     "paged_lion_32bit", "paged_lion_8bit", "rmsprop_bnb", "rmsprop_bnb_8bit", "rmsprop_bnb_32bit"),
                    ("bitsandbytes", EXTRA)),
    **dict.fromkeys(("galore_adamw", "galore_adamw_8bit", "galore_adafactor", "galore_adamw_layerwise",
                     "galore_adamw_8bit_layerwise", "galore_adafactor_layerwise"), ("galore_torch", EXTRA)),
    **dict.fromkeys(("apollo_adamw", "apollo_adamw_layerwise"), ("apollo_torch", EXTRA)),
    **dict.fromkeys(("schedule_free_radam", "schedule_free_adamw", "schedule_free_sgd"), ("schedulefree", EXTRA)),
    **dict.fromkeys(("lomo", "adalomo"), ("lomo_optim", "pip install lomo-optim")),
    "grokadamw": ("grokadamw", "pip install grokadamw"),
    **dict.fromkeys(("adamw_torch_4bit", "adamw_torch_8bit"), ("torchao", "pip install torchao")),
    "stable_adamw": ("optimi", "pip install torch-optimi"),
    "adamw_anyprecision": ("torchdistx", "pip install torchdistx"),
    "adamw_torch_xla": None,
    "adamw_torch_npu_fused": None,
}
# the switches of the optimizer families, in LLaMA-Factory's order of precedence
SWITCHES = ("use_galore", "use_apollo", "loraplus_lr_ratio", "use_badam", "use_adam_mini", "use_muon")
PACKAGES = {"use_galore": "galore_torch", "use_apollo": "apollo_torch", "use_badam": "badam",
            "use_adam_mini": "adam_mini"}
# the `optim` values each low-rank family builds on (LLaMA-Factory's choices; adamw_torch_fused is transformers'
# default and means AdamW too)
LOW_RANK_OPTIMS = {"use_galore": ("adamw_torch", "adamw_torch_fused", "adamw_bnb_8bit", "adamw_8bit",
                                  "paged_adamw_8bit", "adafactor"),
                   "use_apollo": ("adamw_torch", "adamw_torch_fused")}


def _where(origins: Origins, *keys: str) -> str:
    for key in keys:
        if key in origins:
            return origins[key]
    return "config"


def active(cfg: Config) -> list[str]:
    """The optimizer switches the config turns on."""
    ft = cfg.finetuning
    return [key for key in SWITCHES if (getattr(ft, key) is not None if key == "loraplus_lr_ratio"  # noqa: B009
                                        else getattr(ft, key))]


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def one_optimizer(cfg: Config, origins: Origins) -> None:
    on = active(cfg)
    if len(on) > 1:
        raise ConfigError(f"{_where(origins, *on)}: {' and '.join(f'`{k}`' for k in on)} each choose the optimizer; "
                          "turn all but one off (LLaMA-Factory would use only the first and ignore the others)")


def optimizer_fits_method(cfg: Config, origins: Origins) -> None:
    ft, on = cfg.finetuning, active(cfg)
    low_rank = [k for k in ("use_galore", "use_apollo", "use_badam") if k in on]
    if low_rank and ft.finetuning_type == "lora":
        raise ConfigError(f"{_where(origins, *low_rank)}: `{low_rank[0]}` trains full weights and cannot be combined "
                          "with `finetuning_type: lora`; use `finetuning_type: full` (or freeze), or LoRA with "
                          "`loraplus_lr_ratio`")
    if "use_badam" in on and ft.finetuning_type != "full":
        raise ConfigError(f"{_where(origins, 'use_badam')}: BAdam chooses itself which block of decoder layers "
                          f"trains, so it needs `finetuning_type: full` (got {ft.finetuning_type})")
    if "loraplus_lr_ratio" in on and ft.finetuning_type != "lora":
        raise ConfigError(f"{_where(origins, 'loraplus_lr_ratio')}: `loraplus_lr_ratio` is only valid for "
                          f"`finetuning_type: lora` (got {ft.finetuning_type}); remove it")


def optimizer_values_in_range(cfg: Config, origins: Origins) -> None:
    ft = cfg.finetuning
    checks: list[tuple[str, bool, str]] = []
    if ft.use_galore:
        checks += [("galore_rank", ft.galore_rank > 0, "positive"),
                   ("galore_update_interval", ft.galore_update_interval > 0, "a positive number of steps"),
                   ("galore_scale", ft.galore_scale > 0 and math.isfinite(ft.galore_scale), "positive")]
    if ft.use_apollo:
        checks += [("apollo_rank", ft.apollo_rank > 0, "positive"),
                   ("apollo_update_interval", ft.apollo_update_interval > 0, "a positive number of steps"),
                   ("apollo_scale", ft.apollo_scale > 0 and math.isfinite(ft.apollo_scale), "positive")]
    if ft.use_badam:
        interval = ft.badam_switch_interval
        checks += [("badam_switch_interval", interval is None or interval > 0 or interval == -1,
                    "a positive number of steps, or -1 (never switch)"),
                   ("badam_update_ratio", 1e-6 < ft.badam_update_ratio <= 1, "in (0, 1]"),
                   ("badam_start_block", ft.badam_start_block is None or ft.badam_start_block >= 0,
                    "a block index (0 or more)")]
    if ft.loraplus_lr_ratio is not None:
        checks += [("loraplus_lr_ratio", ft.loraplus_lr_ratio > 0 and math.isfinite(ft.loraplus_lr_ratio),
                    "positive (the ratio of B's learning rate to A's)"),
                   ("loraplus_lr_embedding", ft.loraplus_lr_embedding >= 0 and math.isfinite(ft.loraplus_lr_embedding),
                    "0 or more")]
    for key, ok, want in checks:
        if not ok:
            raise ConfigError(f"{_where(origins, key)}: `{key}` must be {want}, got {getattr(ft, key)}")  # noqa: B009


def optimizer_packages_installed(cfg: Config, origins: Origins) -> None:
    for key in active(cfg):
        module = PACKAGES.get(key)
        if module and not installed(module):
            raise ConfigError(f"{_where(origins, key)}: `{key}` needs the {module.replace('_', '-')} package; "
                              f"install it with `{EXTRA}`")
    optim = str(cfg.training.get("optim") or "adamw_torch_fused")
    if optim not in OPTIM_PACKAGES:
        return
    need = OPTIM_PACKAGES[optim]
    if need is None:
        raise ConfigError(f"{_where(origins, 'optim')}: `optim: {optim}` needs a TPU/NPU device, which tunesmith does "
                          "not train on; use adamw_torch (or adamw_torch_fused on a GPU)")
    module, how = need
    if optim.startswith(("galore_", "apollo_")) and not cfg.training.get("optim_target_modules"):
        raise ConfigError(f"{_where(origins, 'optim')}: `optim: {optim}` needs `optim_target_modules` (module names, "
                          "or all-linear); or use `use_galore` / `use_apollo` with their `*_target` keys")
    if optim.endswith("_layerwise") and (cfg.tokens.unfreeze_schedule or cfg.training.get("gradient_accumulation_steps",
                                                                                          1) != 1):
        raise ConfigError(f"{_where(origins, 'optim')}: transformers' `optim: {optim}` steps weights before tunesmith's "
                          "gates and cannot accumulate gradients; use `use_galore: true` / `use_apollo: true` with "
                          "`galore_layerwise` / `apollo_layerwise` (gradient_accumulation_steps 1)")
    if not installed(module):
        raise ConfigError(f"{_where(origins, 'optim')}: `optim: {optim}` needs the {module} package; install it "
                          f"with `{how}`, or use adamw_torch")


def low_rank_fits(cfg: Config, origins: Origins) -> None:
    """GaLore / APOLLO: the base optimizer, DeepSpeed, and what layer-wise steps (inside backward) cannot do."""
    ft, training = cfg.finetuning, cfg.training
    for key, layerwise in (("use_galore", ft.galore_layerwise), ("use_apollo", ft.apollo_layerwise)):
        if not getattr(ft, key):  # noqa: B009
            continue
        name = "GaLore" if key == "use_galore" else "APOLLO"
        optim = str(training.get("optim") or "adamw_torch_fused")
        if optim not in LOW_RANK_OPTIMS[key]:
            raise ConfigError(f"{_where(origins, 'optim', key)}: {name} builds on `optim` "
                              f"{', '.join(LOW_RANK_OPTIMS[key])}; got `optim: {optim}`")
        if training.get("deepspeed"):
            raise ConfigError(f"{_where(origins, 'deepspeed', key)}: {name} is incompatible with DeepSpeed (it "
                              "needs whole gradient matrices); remove `deepspeed` or use plain AdamW")
        if not layerwise:
            continue
        flag = "galore_layerwise" if key == "use_galore" else "apollo_layerwise"
        if training.get("gradient_accumulation_steps", 1) != 1:
            raise ConfigError(f"{_where(origins, 'gradient_accumulation_steps', flag)}: layer-wise {name} steps "
                              "each weight as soon as its gradient is ready, so gradients cannot accumulate; set "
                              f"`gradient_accumulation_steps: 1` or `{flag}: false`")
        if training.get("fp16"):
            raise ConfigError(f"{_where(origins, 'fp16', flag)}: layer-wise {name} would step on fp16 gradients "
                              "before the loss scaler unscales them; use `bf16: true` (or `pure_bf16: true`) or "
                              f"`{flag}: false`")
        if "max_grad_norm" in origins and (training.get("max_grad_norm") or 0) > 0:
            raise ConfigError(f"{origins['max_grad_norm']}: layer-wise {name} steps each weight before the "
                              "gradient norm of the whole model is known, so `max_grad_norm` cannot clip; set "
                              f"`max_grad_norm: 0` or `{flag}: false`")


TOKEN_KEYS = ("add_tokens", "add_special_tokens", "new_special_tokens_config", "special_tokens_file",
              "add_extra_id_tokens", "unfreeze_schedule", "train_new_tokens_only")


def badam_fits(cfg: Config, origins: Origins) -> None:
    """BAdam trains one block of decoder layers at a time and never the embeddings or the head: new token rows
    would never train, and a schedule of its own would fight `unfreeze_schedule`."""
    ft = cfg.finetuning
    if not ft.use_badam:
        return
    set_keys = [k for k in TOKEN_KEYS if getattr(cfg.tokens, k)]  # noqa: B009 - the names are TokenArgs fields
    if set_keys:
        raise ConfigError(f"{_where(origins, *set_keys)}: BAdam trains decoder layers only, never the embeddings, so "
                          f"{', '.join(f'`{k}`' for k in set_keys)} would train nothing (or fight its block "
                          "schedule); use GaLore (`use_galore: true`) or full fine-tuning without `use_badam`")
    if cfg.training.get("deepspeed") and ft.badam_mode == "ratio":
        raise ConfigError(f"{_where(origins, 'badam_mode', 'deepspeed')}: ratio-based BAdam does not support "
                          "distributed training; use `badam_mode: layer`")
    if cfg.finetuning.stage not in ("pt", "sft", "rm", "dpo", "kto"):
        raise ConfigError(f"{_where(origins, 'use_badam', 'stage')}: BAdam switches blocks from Trainer's steps; "
                          f"stage {cfg.finetuning.stage} trains in its own loop; use GaLore, APOLLO, Adam-mini or "
                          "Muon there")


def layerwise_in_trainer_loop(cfg: Config, origins: Origins) -> None:
    ft = cfg.finetuning
    flags = [k for k, on in (("galore_layerwise", ft.use_galore and ft.galore_layerwise),
                             ("apollo_layerwise", ft.use_apollo and ft.apollo_layerwise)) if on]
    if flags and cfg.finetuning.stage not in ("pt", "sft", "rm", "dpo", "kto"):
        raise ConfigError(f"{_where(origins, *flags)}: layer-wise steps are wired into Trainer's loop; stage "
                          f"{cfg.finetuning.stage} trains in its own loop; set `{flags[0]}: false`")


RULES: tuple[Callable[[Config, Origins], None], ...] = (
    one_optimizer, optimizer_fits_method, optimizer_values_in_range, optimizer_packages_installed, low_rank_fits,
    badam_fits, layerwise_in_trainer_loop,
)
