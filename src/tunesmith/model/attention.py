"""Which attention kernel a training run uses, and tunesmith's variable-length attention.

`flash_attn: auto` picks, on a CUDA GPU: flash-attention 2 when the flash-attn package is installed, else
PyTorch's own variable-length flash kernel (`torch.nn.attention.varlen`, registered with transformers'
AttentionInterface as ``tunesmith_varlen``) for packed training, else SDPA. On a CPU: SDPA.

A varlen kernel takes the packed sequences' boundaries (``cu_seq_lens_q``/``max_length_q``, computed by the
collator on the CPU, so no GPU sync is needed to find them) instead of a (T x T) block-diagonal mask: each
token attends only to the earlier tokens of its own sequence, and nothing is spent on masked-out blocks.
Without boundaries (a model called outside tunesmith's collator) the same function falls back to SDPA.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from ..utils.versions import cuda_available, flash_attn_available, torch_varlen_attn

logger = logging.getLogger(__name__)

VARLEN = "tunesmith_varlen"
# flash_attn key -> transformers attn_implementation (auto is resolved by `choose_attention`)
ATTENTION = {"sdpa": "sdpa", "disabled": "eager", "eager": "eager", "fa2": "flash_attention_2",
             "fa3": "flash_attention_3", "flex": "flex_attention", "varlen": VARLEN}
# implementations that read the collator's sequence boundaries instead of a mask
VARLEN_IMPLEMENTATIONS = ("flash_attention_2", "flash_attention_3", VARLEN)


def choose_attention(flash_attn: str, packed: bool, padding_free: bool = False) -> str:
    """The transformers attn_implementation for a `flash_attn` setting, falling back to SDPA (with one
    warning) when the requested kernel cannot run here. ``packed``: training batches carry sequence
    boundaries and run in half precision (bf16/fp16), so `auto` may choose PyTorch's varlen flash kernel.
    ``padding_free``: a batch is one row of many sequences; without a flash kernel, `auto` still takes
    tunesmith_varlen, whose fallback attends within each sequence (one SDPA call each) instead of over a
    (T x T) mask of the whole row (measured on the CPU: the speed of packed rows, 1.27x SDPA with the mask)."""
    cuda = cuda_available()
    if flash_attn == "auto":
        if cuda and flash_attn_available():
            return "flash_attention_2"
        if (cuda and packed and torch_varlen_attn() is not None) or padding_free:
            return register_varlen()
        return "sdpa"
    impl = ATTENTION[flash_attn]
    if impl.startswith("flash_attention") and not flash_attn_available():
        logger.warning("flash_attn=%s requested but flash-attn is not installed; using sdpa", flash_attn)
        return "sdpa"
    if impl == VARLEN:
        if not cuda or torch_varlen_attn() is None:
            logger.info("flash_attn=varlen: no CUDA varlen kernel here; attention runs one SDPA call per sequence")
        return register_varlen()
    return impl


# PyTorch's varlen kernel, resolved once when the attention is registered (not inside a compiled region)
_kernel = None


def register_varlen() -> str:
    from transformers import AttentionInterface

    global _kernel
    _kernel = torch_varlen_attn()
    AttentionInterface.register(VARLEN, varlen_attention_forward)
    return VARLEN


def varlen_attention_forward(module, query, key, value, attention_mask, dropout: float = 0.0,
                             scaling: float | None = None, sliding_window: int | None = None,
                             softcap: float | None = None, **kwargs):
    """transformers attention function: query (B, Hq, T, D), key/value (B, Hkv, T, D) -> ((B, T, Hq, D), None)."""
    cu, longest = kwargs.get("cu_seq_lens_q"), kwargs.get("max_length_q")
    if cu is None or dropout or softcap or sliding_window:
        from .compat import sdpa_attention

        if cu is not None:
            raise ValueError("tunesmith_varlen attention supports neither dropout, soft-capping nor sliding windows; "
                             "set `flash_attn: sdpa`")
        return sdpa_attention(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    b, hq, t, d = query.shape
    hkv = key.shape[1]
    q = query.transpose(1, 2).reshape(b * t, hq, d)
    k = key.transpose(1, 2).reshape(b * t, hkv, d)
    v = value.transpose(1, 2).reshape(b * t, hkv, d)
    out = varlen_causal(q, k, v, cu.to(q.device), int(longest), scaling)
    return out.view(b, t, hq, d), None


def varlen_causal(q, k, v, cu_seqlens, max_len: int, scale: float | None):
    """Causal attention inside each sequence of flattened (N, H, D) tensors: PyTorch's varlen flash kernel
    on CUDA in bf16/fp16, one SDPA call per sequence otherwise (the reference the kernel is tested against)."""
    if _kernel is not None and q.is_cuda and q.dtype in (torch.bfloat16, torch.float16):
        return _kernel(q, k, v, cu_seqlens, max_len, scale)
    if k.shape[1] != q.shape[1]:
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    out = torch.empty_like(q)
    bounds = cu_seqlens.tolist()
    for start, stop in zip(bounds[:-1], bounds[1:]):
        seg = [x[start:stop].transpose(0, 1)[None] for x in (q, k, v)]
        out[start:stop] = F.scaled_dot_product_attention(*seg, is_causal=True, scale=scale)[0].transpose(0, 1)
    return out
