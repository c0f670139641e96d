"""Config rules of the PEFT variants (OFT, PiSSA, LLaMA Pro, DoRA, rsLoRA) and the sft loss variants (DFT, ASFT,
EAFT, label smoothing), as LLaMA-Factory states them, plus the combinations tunesmith refuses instead of
silently dropping one side."""

from __future__ import annotations

from .errors import ConfigError
from .schema import Config

Origins = dict[str, str]
ADAPTER_TYPES = ("lora", "oft")  # finetuning types that train a peft adapter


def _where(origins: Origins, *keys: str) -> str:
    return next((origins[k] for k in keys if k in origins), "config")


def loss_variants_chosen(cfg: Config) -> list[str]:
    ft = cfg.finetuning
    return [key for key in ("use_dft_loss", "use_asft_loss", "use_eaft_loss") if getattr(ft, key)]


def loss_variants_fit(cfg: Config, origins: Origins) -> None:
    """One loss variant at a time, in stage sft; label smoothing only on the plain causal-LM loss (pt, sft)."""
    ft = cfg.finetuning
    chosen = loss_variants_chosen(cfg)
    if len(chosen) > 1:
        raise ConfigError(f"{_where(origins, *chosen)}: {' and '.join(f'`{k}`' for k in chosen)} are each a "
                          "replacement of the sft loss; choose one")
    if chosen and cfg.stage != "sft":
        raise ConfigError(f"{_where(origins, chosen[0])}: `{chosen[0]}` replaces the loss of stage sft, not of "
                          f"stage {cfg.stage}; remove it")
    smoothing = cfg.training.get("label_smoothing_factor") or 0.0
    if smoothing and chosen:
        raise ConfigError(f"{_where(origins, 'label_smoothing_factor')}: `label_smoothing_factor` does not combine "
                          f"with `{chosen[0]}` (LLaMA-Factory drops the smoothing there); remove one of the two")
    if smoothing and cfg.stage not in ("pt", "sft"):
        raise ConfigError(f"{_where(origins, 'label_smoothing_factor')}: `label_smoothing_factor` smooths the "
                          f"causal-LM loss of stages pt and sft, not stage {cfg.stage}'s loss"
                          + ("; use `dpo_label_smoothing`" if cfg.stage == "dpo" else "") + "; remove it")
    if ft.use_asft_loss and cfg.preference.precompute_ref_log_probs:
        raise ConfigError(f"{_where(origins, 'precompute_ref_log_probs')}: `precompute_ref_log_probs` does not apply "
                          "to `use_asft_loss`: its KL term needs the reference's whole distribution at every "
                          "position; remove it")
    for key in ("asft_alpha", "eaft_alpha"):
        if getattr(ft, key) < 0:
            raise ConfigError(f"{_where(origins, key)}: `{key}` must be >= 0, got {getattr(ft, key)}")


def peft_variants_fit(cfg: Config, origins: Origins) -> None:
    """LLaMA-Factory's rules: DoRA, rsLoRA and PiSSA are LoRA options; OFT takes exactly one of oft_rank and
    oft_block_size; LLaMA Pro needs freeze, lora or oft and the number of inserted blocks."""
    ft = cfg.finetuning
    if ft.finetuning_type != "lora":
        for key in ("use_dora", "use_rslora", "pissa_init"):
            if getattr(ft, key):
                raise ConfigError(f"{_where(origins, key)}: `{key}` is an option of `finetuning_type: lora`, not "
                                  f"{ft.finetuning_type}; remove it")
    if ft.pissa_convert and not ft.pissa_init:
        raise ConfigError(f"{_where(origins, 'pissa_convert')}: `pissa_convert` converts a PiSSA adapter; it needs "
                          "`pissa_init: true`")
    if ft.pissa_init and cfg.model.adapter_name_or_path and not ft.create_new_adapter:
        raise ConfigError(f"{_where(origins, 'pissa_init')}: `pissa_init` initialises a new adapter, but the last of "
                          "`adapter_name_or_path` would be resumed instead; set `create_new_adapter: true` (the "
                          "loaded adapters are merged first) or remove `pissa_init`")
    if ft.pissa_init and ft.use_dora:
        raise ConfigError(f"{_where(origins, 'pissa_init')}: `pissa_init` and `use_dora` do not combine (peft); "
                          "choose one")
    if ft.pissa_init and cfg.model.quantization_bit is not None:
        raise ConfigError(f"{_where(origins, 'pissa_init')}: `pissa_init` needs the full-precision weights to split "
                          "(PiSSA cannot initialise on a quantized model, as in LLaMA-Factory); remove "
                          "`quantization_bit` or `pissa_init`")
    if ft.pissa_init and ft.pissa_iter < -1:
        raise ConfigError(f"{_where(origins, 'pissa_iter')}: `pissa_iter` must be -1 (exact SVD) or the number of "
                          f"fast-SVD iterations (>= 0), got {ft.pissa_iter}")
    if ft.pissa_init and adapter_off_reference(cfg):
        raise ConfigError(f"{_where(origins, 'pissa_init')}: `pissa_init` cannot be used here: the reference would "
                          "be the model with its adapter switched off, which for PiSSA is the residual, not the "
                          "original model (LLaMA-Factory refuses PiSSA for ppo, kto and dpo with a reference); "
                          "train without PiSSA, or give `ref_model`")
    if ft.finetuning_type == "oft":
        if (ft.oft_rank == 0) == (ft.oft_block_size == 0):
            raise ConfigError(f"{_where(origins, 'oft_rank', 'oft_block_size')}: OFT takes exactly one of "
                              f"`oft_rank` and `oft_block_size` (the other 0), got oft_rank {ft.oft_rank} and "
                              f"oft_block_size {ft.oft_block_size}")
        if min(ft.oft_rank, ft.oft_block_size) < 0:
            raise ConfigError(f"{_where(origins, 'oft_rank', 'oft_block_size')}: `oft_rank` and `oft_block_size` "
                              "must be >= 0")
        if not 0.0 <= ft.module_dropout < 1.0:
            raise ConfigError(f"{_where(origins, 'module_dropout')}: `module_dropout` must be in [0, 1), got "
                              f"{ft.module_dropout}")
    if ft.use_llama_pro:
        if ft.finetuning_type == "full":
            raise ConfigError(f"{_where(origins, 'use_llama_pro')}: `use_llama_pro` trains only the inserted blocks; "
                              "it needs `finetuning_type: freeze`, lora or oft, not full")
        if ft.freeze_trainable_layers <= 0:
            raise ConfigError(f"{_where(origins, 'freeze_trainable_layers')}: with `use_llama_pro`, "
                              "`freeze_trainable_layers` is the number of blocks `tunesmith llama-pro` inserted "
                              f"(`num_expand`), so it must be positive, got {ft.freeze_trainable_layers}")


def adapter_off_reference(cfg: Config) -> bool:
    """The run compares with a reference that would be the policy with its adapter switched off."""
    if cfg.finetuning.finetuning_type not in ADAPTER_TYPES or cfg.preference.ref_model:
        return False
    dpo_reference = cfg.stage == "dpo" and cfg.preference.pref_loss not in ("orpo", "simpo")
    return cfg.stage in ("ppo", "kto") or dpo_reference or (cfg.stage == "sft" and cfg.finetuning.use_asft_loss)


RULES = (loss_variants_fit, peft_variants_fit)
