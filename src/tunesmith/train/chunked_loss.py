"""Causal-LM cross-entropy straight from the final hidden states, in chunks of positions, so the
full-vocabulary logits of a batch never exist at once.

For each chunk of trained positions the head's logits are computed, their log-sum-exp and target logit taken
in float32, and -- when gradients are needed -- the gradients of the hidden states and of the head weight
are formed right there (softmax minus one-hot, times each position's weight and the loss scale); backward
only multiplies the stored gradients by the incoming scalar. Memory per chunk: chunk x vocab logits; the
batch's (positions x vocab) logits tensor of the standard loss, and its float32 upcast, never exist.
The same idea as Liger-Kernel's fused linear cross-entropy, written over plain PyTorch ops.

Same loss as the standard one: Σ_t w_t · CE_t · scale, with ``scale`` = 1 / (the number of trained tokens
over the accumulation window), as transformers normalises; every w_t = 1.0 gives the standard loss.
"""

from __future__ import annotations

import torch

from .loss_variants import EAFT_SCALE, EAFT_TOP_K

# Elements of one chunk's (positions x vocab) float32 logits when the chunk size is automatic: 2 GiB (fewer,
# larger chunks: the head's weight gradient is accumulated once per chunk).
AUTO_CHUNK_ELEMENTS = 2**29


def auto_chunk_size(vocab_size: int) -> int:
    """Positions per chunk: a power of two in [128, 8192] keeping a chunk's logits near AUTO_CHUNK_ELEMENTS."""
    rows = max(AUTO_CHUNK_ELEMENTS // max(vocab_size, 1), 128)
    return min(1 << (rows.bit_length() - 1), 8192)


def chunk_terms(logits, bias, targets, factor, need_grad: bool, want_stats: bool, variant=("ce", 0.0, 0.0)):
    """One chunk: (CE (c,), the variant's per-position loss ℓ (c,), argmax hits (c,) or None, d loss / d logits
    (c, V) in the logits' dtype or None).

    logits: (c, V) from the matmul; the log-sum-exp and the softmax are float32. The gradient is formed in
    place of the float32 logits (softmax minus one-hot, times each position's factor) to keep one (c, V)
    float32 buffer in eager mode; compiled, the passes fuse into a few kernels.
    variant: (kind, smoothing, alpha) of train/losses.py LossVariant (kind ce, dft or eaft): dft and eaft
    scale each position's CE and gradient by a detached weight; smoothing ε adds ε · (p - 1/V) to the
    gradient of (1 - ε) · CE.
    """
    kind, smoothing, alpha = variant
    x = logits.float()
    if bias is not None:
        x = x + bias.float()
    lse = torch.logsumexp(x, dim=-1)
    ce = lse - x.gather(1, targets[:, None]).squeeze(1)
    correct = x.argmax(-1) == targets if want_stats else None
    loss = ce
    if kind == "dft":
        weight = torch.exp(-ce)
        loss, factor = ce * weight, factor * weight
    elif kind == "eaft":
        top = x.topk(min(EAFT_TOP_K, x.shape[-1]), dim=-1).values
        logp = top - torch.logsumexp(top, dim=-1, keepdim=True)
        weight = (-(logp.exp() * logp).sum(-1) / EAFT_SCALE).pow(alpha)
        loss, factor = ce * weight, factor * weight
    elif smoothing:
        loss = (1.0 - smoothing) * ce + smoothing * (lse - x.mean(-1))
    if not need_grad:
        return ce, loss, correct, None
    x.sub_(lse[:, None]).exp_()
    x[torch.arange(x.shape[0], device=x.device), targets] -= 1.0 - smoothing
    if smoothing:
        x.sub_(smoothing / x.shape[-1])
    x.mul_(factor[:, None])
    return ce, loss, correct, x.to(logits.dtype)


_compiled_terms = None


def compiled_chunk_terms():
    """chunk_terms through torch.compile (built on first use)."""
    global _compiled_terms
    if _compiled_terms is None:
        _compiled_terms = torch.compile(chunk_terms, dynamic=None)
    return _compiled_terms


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, position_weights, scale, chunk_size: int, compute_dtype,
                want_stats: bool, grads: tuple[bool, bool, bool], terms, variant):
        needs_grad = any(grads)
        n = hidden.shape[0]
        w = weight.to(compute_dtype)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        ce_all = torch.empty(n, dtype=torch.float32, device=hidden.device) if want_stats else None
        correct_all = torch.empty(n, dtype=torch.bool, device=hidden.device) if want_stats else None
        grad_hidden = torch.empty_like(hidden) if grads[0] else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if grads[1] else None
        grad_bias = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if grads[2] else None
        factor = position_weights.float() * scale  # (N,): d loss / d CE_t
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            h = hidden[start:stop].to(compute_dtype)
            t = targets[start:stop]
            ce, loss, correct, g = terms(h @ w.t(), bias, t, factor[start:stop], needs_grad, want_stats, variant)
            total += (loss * factor[start:stop]).sum()
            if want_stats:
                ce_all[start:stop] = ce
                correct_all[start:stop] = correct
            if grad_hidden is not None:
                grad_hidden[start:stop] = (g @ w).to(hidden.dtype)
            if grad_weight is not None:
                grad_weight += (g.t() @ h).float()
            if grad_bias is not None:
                grad_bias += g.float().sum(0)
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        ctx.weight_dtype = weight.dtype
        ctx.bias_dtype = bias.dtype if bias is not None else None
        if want_stats:
            ctx.mark_non_differentiable(ce_all, correct_all)
        return total, ce_all, correct_all

    @staticmethod
    def backward(ctx, grad_total, _grad_ce=None, _grad_correct=None):
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        out_hidden = grad_hidden * grad_total.to(grad_hidden.dtype) if grad_hidden is not None else None
        out_weight = (grad_weight * grad_total).to(ctx.weight_dtype) if grad_weight is not None else None
        out_bias = (grad_bias * grad_total).to(ctx.bias_dtype) if grad_bias is not None else None
        return out_hidden, out_weight, out_bias, None, None, None, None, None, None, None, None, None


def chunked_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                                 scale: torch.Tensor | float, position_weights: torch.Tensor | None = None,
                                 bias: torch.Tensor | None = None, chunk_size: int = 0,
                                 compute_dtype: torch.dtype | None = None, want_stats: bool = False,
                                 compiled: bool = False, variant: tuple = ("ce", 0.0, 0.0)):
    """Σ_t w_t · CE(hidden_t @ weightᵀ + bias, targets_t) · scale, chunk by chunk (with ``variant``, a
    (kind, smoothing, alpha) of train/losses.py's LossVariant, the variant's ℓ_t instead of CE_t).

    hidden: (N, H) the final hidden states of the N trained positions; weight: (V, H) the output head;
    targets: (N,) int64 target ids (all trained); position_weights: (N,) per-position loss weights (None: 1.0);
    scale: 0-dim tensor or float, usually 1 / trained tokens; chunk_size: positions per chunk (0: automatic);
    compute_dtype: dtype of the matmuls (None: the weight's; bf16 under autocast); the log-sum-exp is float32.
    compiled: fuse each chunk's softmax passes with torch.compile (fewer passes over the chunk's logits).
    Returns (loss, ce, correct): the 0-dim float32 loss, and with ``want_stats`` the (N,) per-position CE and
    whether the argmax equals the target (detached), else None, None.
    """
    if position_weights is None:
        position_weights = torch.ones(targets.shape, dtype=torch.float32, device=hidden.device)
    if not torch.is_tensor(scale):
        scale = torch.tensor(float(scale), device=hidden.device)
    chunk = chunk_size or auto_chunk_size(weight.shape[0])
    grad_on = torch.is_grad_enabled()
    grads = (grad_on and hidden.requires_grad, grad_on and weight.requires_grad,
             grad_on and bias is not None and bias.requires_grad)
    with torch.autocast(hidden.device.type, enabled=False):
        return _ChunkedLinearCrossEntropy.apply(hidden, weight, bias, targets, position_weights,
                                                scale.to(device=hidden.device, dtype=torch.float32), chunk,
                                                compute_dtype or weight.dtype, want_stats, grads,
                                                compiled_chunk_terms() if compiled else chunk_terms, variant)
