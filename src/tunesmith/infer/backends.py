"""The engine a config asks for (`infer_backend`): transformers' generate, or vLLM when installed."""

from __future__ import annotations

import logging

from ..config.schema import Config
from .engine import Engine
from .hf_engine import HuggingFaceEngine

logger = logging.getLogger(__name__)


def create_engine(cfg: Config) -> Engine:
    """The engine the config asks for (infer_backend), loaded from an output dir or model + adapters."""
    if cfg.infer.infer_backend == "vllm":
        from .vllm_engine import VllmEngine

        return VllmEngine(cfg)
    if cfg.generating.num_beams > 1:
        logger.info("num_beams=%d: replies arrive whole, not streamed", cfg.generating.num_beams)
    from .load import load_for_inference

    return HuggingFaceEngine(cfg, load_for_inference(cfg))
