"""The chunked loss wired to a causal LM: the output head's input is taken by a forward pre-hook, the head
itself then projects nothing, and the loss is computed from those hidden states (train/chunked_loss.py).

The model is still called through its wrappers (DDP, FSDP, autocast), so distributed gradient reduction and
mixed precision work as usual; only the logits are skipped. A pre-hook is used instead of calling the decoder
directly because it sees exactly what the head would see, whatever the model does before its head.
"""

from __future__ import annotations

import torch

from .chunked_loss import chunked_linear_cross_entropy

# config fields of models that transform the logits after the head (soft-capping, scaling)
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def head_linears(head) -> list[torch.nn.Linear] | None:
    """The plain linear layers one of which computes the head's logits: the head itself, or the original and
    the trained copies inside a peft ModulesToSaveWrapper (LoRA runs that train the embeddings in full);
    None for anything else (a LoRA layer on the head, trainable-token rows), which the chunked loss cannot
    serve."""
    from peft.utils.other import ModulesToSaveWrapper

    if type(head) is torch.nn.Linear:
        return [head]
    if isinstance(head, ModulesToSaveWrapper):
        inner = [head.original_module, *head.modules_to_save.values()]
        if all(type(m) is torch.nn.Linear for m in inner):
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
                 token_weights: torch.Tensor | None = None, compiled: bool = False) -> None:
        self.chunk_size = chunk_size
        self.compiled = compiled  # fuse each chunk's softmax passes with torch.compile
        self.compute_dtype = compute_dtype
        self.token_weights = token_weights  # (V,) per-target weights or None
        self.capturing = False
        self.hidden = self.used = None  # the head's input and the linear layer that received it
        self.handles = [linear.register_forward_pre_hook(self._take_input)
                        for linear in head_linears(model.get_output_embeddings())]

    def _take_input(self, module, args):
        if not self.capturing:
            return None
        self.hidden, self.used = args[0], module
        return (args[0][..., :0, :],)  # the head projects no position

    def __call__(self, model, inputs: dict, scale: torch.Tensor | float, want_stats: bool = False):
        """(loss, targets, ce, correct): Σ_t w_t · CE_t · scale over the trained positions, and with
        ``want_stats`` their per-position CE and argmax hits (else None)."""
        index, targets = inputs.pop("loss_index"), inputs.pop("loss_targets")
        inputs.pop("labels", None)
        self.capturing = True
        try:
            model(**inputs)
        finally:
            self.capturing = False
        hidden, head, self.hidden, self.used = self.hidden, self.used, None, None
        hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, index)
        weights = None
        if self.token_weights is not None:
            self.token_weights = self.token_weights.to(targets.device)
            weights = self.token_weights[targets]
        loss, ce, correct = chunked_linear_cross_entropy(
            hidden, head.weight, targets, scale, weights, bias=head.bias, chunk_size=self.chunk_size,
            compute_dtype=self.compute_dtype if self.compute_dtype is not None else head.weight.dtype,
            want_stats=want_stats, compiled=self.compiled)
        return loss, targets, ce, correct

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
