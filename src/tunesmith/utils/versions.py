"""Every check of what is installed lives here (no getattr probing elsewhere)."""

from __future__ import annotations

import importlib.util


def flash_attn_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def bf16_supported() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
