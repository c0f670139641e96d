"""Config rules of the sft loss variants (DFT, ASFT, EAFT, label smoothing), as LLaMA-Factory states them, plus
the combinations tunesmith refuses instead of silently dropping one side."""

from __future__ import annotations

from .errors import ConfigError
from .schema import Config

Origins = dict[str, str]


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


RULES = (loss_variants_fit,)
