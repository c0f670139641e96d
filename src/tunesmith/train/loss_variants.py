"""Which per-token loss the causal-LM loss sums: plain cross-entropy, label smoothing (transformers'
LabelSmoother), or LLaMA-Factory's DFT, EAFT and ASFT. Torch-free: the run plan reads it before anything loads;
the math is in train/losses.py (full logits) and train/chunked_loss.py (from the head's input, in chunks)."""

from __future__ import annotations

from dataclasses import dataclass

EAFT_TOP_K = 20  # EAFT's entropy is taken over the top-20 logits, renormalised, and divided by 3 (LLaMA-Factory)
EAFT_SCALE = 3.0


@dataclass(frozen=True)
class LossVariant:
    """Which per-token loss ℓ_t the causal-LM loss sums (Σ_t w_t · ℓ_t / trained tokens, w_t the token weights):

    - ``ce``: CE_t, with ``smoothing`` ε: (1 - ε) · CE_t + ε · mean_v(-log p_t(v)) (transformers' LabelSmoother);
    - ``dft``: CE_t · sg(p_t(y_t)) (sg: no gradient through the factor);
    - ``eaft``: CE_t · sg((H_t / 3) ^ alpha), H_t the entropy of the renormalised top-20 distribution;
    - ``asft``: CE_t · sg(p_t(y_t)) + alpha · KL(q_t || p_t), q_t the reference's distribution.
    """

    kind: str = "ce"
    smoothing: float = 0.0
    alpha: float = 0.0

    @property
    def plain(self) -> bool:
        return self.kind == "ce" and not self.smoothing

    def describe(self) -> str:
        if self.kind == "ce":
            return f"cross-entropy, label smoothing {self.smoothing:g}" if self.smoothing else "cross-entropy"
        if self.kind == "dft":
            return "dft (cross-entropy x detached label probability)"
        if self.kind == "eaft":
            return f"eaft (cross-entropy x detached (top-{EAFT_TOP_K} entropy / 3)^{self.alpha:g})"
        return f"asft (dft + {self.alpha:g} x KL(reference || model))"


def loss_variant(cfg) -> LossVariant:
    """The variant a config asks for (config/rules_methods.py allows one at a time)."""
    ft = cfg.finetuning
    if ft.use_dft_loss:
        return LossVariant("dft")
    if ft.use_eaft_loss:
        return LossVariant("eaft", alpha=ft.eaft_alpha)
    if ft.use_asft_loss:
        return LossVariant("asft", alpha=ft.asft_alpha)
    return LossVariant("ce", smoothing=float(cfg.training.get("label_smoothing_factor") or 0.0))
