"""Every check of what is installed lives here (no getattr probing elsewhere)."""

from __future__ import annotations

import functools
import importlib.util


def flash_attn_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def modelscope_available() -> bool:
    return importlib.util.find_spec("modelscope") is not None


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def bf16_supported() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


@functools.lru_cache(maxsize=1)
def torch_varlen_attn():
    """PyTorch's variable-length flash attention as ``f(q, k, v, cu_seqlens, max_len, scale)`` (causal, GQA),
    or None where this torch has none with a backward pass (it arrived forward-only; trainable from 2.10). Its
    keyword arguments changed between releases (``is_causal``; then ``window_size`` and ``scale``; 2.12:
    ``enable_gqa``); this adapts to the installed one."""
    import inspect

    import torch

    if tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]) < (2, 10):
        return None
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    params = inspect.signature(varlen_attn).parameters
    causal = {"window_size": (-1, 0)} if "window_size" in params else {"is_causal": True}
    gqa = "enable_gqa" in params
    has_scale = "scale" in params

    def call(q, k, v, cu_seqlens, max_len, scale):
        if k.shape[1] != q.shape[1] and not gqa:
            k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
            v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
        extra = dict(causal)
        if gqa:
            extra["enable_gqa"] = k.shape[1] != q.shape[1]
        if scale is not None:
            if has_scale:
                extra["scale"] = scale
            elif abs(scale - q.shape[-1] ** -0.5) > 1e-12:
                raise ValueError("this torch's varlen_attn has no `scale`; set `flash_attn: sdpa`")
        return varlen_attn(q, k, v, cu_seqlens, cu_seqlens, max_len, max_len, **extra)

    return call
