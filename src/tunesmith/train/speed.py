"""Speed settings that act on the process or the model (the decisions are the run plan's, train/plan.py):
GPU input transfer, compiled decoder layers, the CUDA allocator; each keeps the results exact."""

from __future__ import annotations

import logging
import os

from ..config.schema import Config

logger = logging.getLogger(__name__)


def gpu_input_arguments(kwargs: dict, cores: int, streaming: bool) -> dict:
    """On a CUDA GPU, batches are collated by worker processes (2 unless set; none for a stream, which is read
    in one process) into pinned memory and copied without blocking, so the host never waits for the GPU to
    drain before the next step's first kernel (a blocking copy synchronises the stream)."""
    import torch

    if not torch.cuda.is_available():
        return {}
    out: dict = {}
    if "dataloader_num_workers" not in kwargs and not streaming:
        out["dataloader_num_workers"] = min(2, cores)
        out["dataloader_persistent_workers"] = kwargs.get("dataloader_persistent_workers", True)
    accelerator = kwargs.get("accelerator_config")
    if accelerator is None or isinstance(accelerator, dict):
        out["accelerator_config"] = {"non_blocking": bool(kwargs.get("dataloader_pin_memory", True)),
                                     **(accelerator or {})}
    return out


def compile_layers(model) -> None:
    """torch.compile each decoder layer in place (the layers share one compiled graph)."""
    from ..model.methods import decoder_layers

    prefix, n_layers = decoder_layers(model)
    for layer in model.get_submodule(prefix):
        layer.compile()
    logger.info("compile_layers: %d decoder layers compiled with torch.compile (the first steps compile)", n_layers)


def liger_note(cfg: Config) -> None:
    """LLaMA-Factory's `enable_liger_kernel: true`: say which of tunesmith's paths stand in for it."""
    if cfg.speed.enable_liger_kernel:
        logger.info("enable_liger_kernel: tunesmith's chunked loss (a fused linear cross-entropy) and compiled "
                    "decoder layers (fused norms and activations) do Liger's work; liger-kernel is not used")


def allocator_settings(cfg: Config) -> None:
    """`cuda_alloc_conf` into the environment before CUDA allocates, unless the user set the variable."""
    value = cfg.speed.cuda_alloc_conf
    if value and not any(k in os.environ for k in ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")):
        os.environ["PYTORCH_CUDA_ALLOC_CONF"] = value
