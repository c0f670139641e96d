"""The chunked loss wired to a causal LM: the output head's input is taken by a forward pre-hook, the head
itself then projects nothing (model/compat.py HeadInputCapture), and the loss is computed from those hidden
states (train/chunked_loss.py).

The model is still called through its wrappers (DDP, FSDP, autocast), so distributed gradient reduction and
mixed precision work as usual; only the logits are skipped. A pre-hook is used instead of calling the decoder
directly because it sees exactly what the head would see, whatever the model does before its head.
"""

from __future__ import annotations

import torch

from ..model.compat import HeadInputCapture, saved_copies
from .chunked_loss import chunked_linear_cross_entropy
from .loss_variants import LossVariant
from .plan import LOGIT_TRANSFORMS



def head_linears(head) -> list[torch.nn.Linear] | None:
    """The plain linear layers one of which computes the head's logits: the head itself, or the original and
    the trained copies inside a peft ModulesToSaveWrapper (LoRA runs that train the embeddings in full);
    None for anything else (a LoRA layer on the head, trainable-token rows), which the chunked loss cannot
    serve."""
    inner = saved_copies(head)
    if inner is not None and all(type(m) is torch.nn.Linear for m in inner):
        return inner
    return None


def chunked_loss_blocker(model) -> str | None:
    """Why the chunked loss cannot serve this model, or None when it can."""
    head = model.get_output_embeddings()
    if head_linears(head) is None:
        return f"its output head is a {type(head).__name__}, not a plain linear layer"
    config = model.config.get_text_config()
    for key in LOGIT_TRANSFORMS:
        value = getattr(config, key, None)
        if value not in (None, 1, 1.0):
            return f"it transforms its logits after the head ({key}={value})"
    return None


class HeadLoss:
    """Causal-LM loss for batches that carry ``loss_index`` / ``loss_targets`` (data.collate.Collator)."""

    KEYS = ("loss_index", "loss_targets")

    def __init__(self, model, chunk_size: int = 0, compute_dtype: torch.dtype | None = None,
                 token_weights: torch.Tensor | None = None, compiled: bool = False, variant=None) -> None:
        self.chunk_size = chunk_size
        self.variant = variant or LossVariant()  # train/losses.py: ce (with label smoothing), dft or eaft
        if self.variant.kind == "asft":
            raise ValueError("the chunked loss does not compute asft (it needs the reference's logits)")
        self.compiled = compiled  # fuse each chunk's softmax passes with torch.compile
        self.compute_dtype = compute_dtype
        self.token_weights = token_weights  # (V,) per-target weights or None
        self.head_input = HeadInputCapture(head_linears(model.get_output_embeddings()))

    def __call__(self, model, inputs: dict, scale: torch.Tensor | float, want_stats: bool = False):
        """(loss, targets, ce, correct): Σ_t w_t · ℓ_t · scale over the trained positions (ℓ_t: the variant's
        per-token loss, CE_t by default), and with
        ``want_stats`` their per-position CE and argmax hits (else None)."""
        index, targets = inputs.pop("loss_index"), inputs.pop("loss_targets")
        inputs.pop("labels", None)
        with self.head_input.capture():
            model(**inputs)
        hidden, head = self.head_input.take()
        hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, index)
        weights = None
        if self.token_weights is not None:
            self.token_weights = self.token_weights.to(targets.device)
            weights = self.token_weights[targets]
        loss, ce, correct = chunked_linear_cross_entropy(
            hidden, head.weight, targets, scale, weights, bias=head.bias, chunk_size=self.chunk_size,
            compute_dtype=self.compute_dtype if self.compute_dtype is not None else head.weight.dtype,
            want_stats=want_stats, compiled=self.compiled,
            variant=(self.variant.kind, self.variant.smoothing, self.variant.alpha))
        return loss, targets, ce, correct

    def remove(self) -> None:
        self.head_input.remove()
