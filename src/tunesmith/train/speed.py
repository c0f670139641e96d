"""How fast a run trains: the choices that change only speed (the chunked loss, compiled layers, token-budget
batches, GPU input transfer, the CUDA allocator), each keeping the results exact."""

from __future__ import annotations

import logging
import os

from ..config.schema import Config

logger = logging.getLogger(__name__)


def checkpointing_arguments(cfg: Config) -> dict:
    """LLaMA-Factory's `disable_gradient_checkpointing` / `use_reentrant_gc` as TrainingArguments. An explicit
    `gradient_checkpointing` wins; unset, activation checkpointing stays off (faster; LLaMA-Factory's default
    is on, to save memory)."""
    disable = cfg.model.disable_gradient_checkpointing
    on = cfg.training.get("gradient_checkpointing")
    if on is None and disable is not None:
        on = not disable
    if not on:
        return {"gradient_checkpointing": False} if on is not None else {}
    kwargs = dict(cfg.training.get("gradient_checkpointing_kwargs") or {})
    kwargs.setdefault("use_reentrant", cfg.model.use_reentrant_gc)
    return {"gradient_checkpointing": True, "gradient_checkpointing_kwargs": kwargs}


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


def half_precision(cfg: Config) -> bool:
    """Whether training runs in bf16/fp16 here (on a CUDA GPU; elsewhere precision() falls back to float32)."""
    import torch

    wanted = cfg.speed.pure_bf16 or cfg.training.get("bf16") or cfg.training.get("fp16")
    return bool(wanted) and torch.cuda.is_available()


def layer_compilation(cfg: Config, packed_half: bool) -> bool:
    """`compile_layers`, or when unset: on for packed half-precision training on a CUDA GPU, unless the whole
    model is compiled (`torch_compile`) or activations are recomputed (gradient checkpointing)."""
    import torch

    if cfg.speed.compile_layers is not None:
        return cfg.speed.compile_layers
    return (packed_half and torch.cuda.is_available() and not cfg.training.get("torch_compile")
            and not checkpointing_arguments(cfg).get("gradient_checkpointing"))


def compile_failure(err: BaseException) -> bool:
    """Whether an error came out of torch.compile (tracing or code generation)."""
    from torch._dynamo.exc import TorchDynamoException

    return isinstance(err, TorchDynamoException)


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


def chunked_head_loss(cfg: Config, model, args, token_weights, compiled: bool = False):
    """The chunked causal-LM loss for this run, or None (with the reason) where it does not apply; ``compiled``
    (with compiled layers) fuses each chunk's softmax passes too."""
    import torch

    from .head_loss import HeadLoss, chunked_loss_blocker

    if not cfg.speed.chunked_loss:
        return None
    reason = chunked_loss_blocker(model)
    if args.fsdp or args.deepspeed or os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        reason = "FSDP/DeepSpeed shard the head's weight outside the forward pass"
    if reason is not None:
        logger.info("chunked_loss: not used because %s; the standard loss computes full logits", reason)
        return None
    dtype = torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else None  # autocast's matmul dtype
    return HeadLoss(model, cfg.speed.loss_chunk_size, dtype, token_weights, compiled=compiled)


def token_budget_batches(cfg: Config, data, args):
    """The token-budget batch sampler of `max_tokens_per_batch`, or None."""
    from ..data.collate import EncodedDataset
    from ..data.sampler import example_cost
    from .trainer import TokenBudgetBatchSampler

    if not cfg.speed.max_tokens_per_batch:
        return None
    items = EncodedDataset(data.train)
    batches = TokenBudgetBatchSampler([example_cost(items[i]) for i in range(len(items))],
                                      cfg.speed.max_tokens_per_batch, seed=args.data_seed or args.seed,
                                      shuffle=not cfg.data.disable_shuffling, phase_sizes=data.phase_sizes,
                                      rank=args.process_index, world_size=args.world_size)
    counts = batches.phase_batch_counts
    logger.info("max_tokens_per_batch=%d: %d examples in %d micro-batches (%.1f per batch on average)",
                cfg.speed.max_tokens_per_batch, len(items), sum(counts), len(items) / max(sum(counts), 1))
    return batches


def allocator_settings(cfg: Config) -> None:
    """`cuda_alloc_conf` into the environment before CUDA allocates, unless the user set the variable."""
    value = cfg.speed.cuda_alloc_conf
    if value and not any(k in os.environ for k in ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")):
        os.environ["PYTORCH_CUDA_ALLOC_CONF"] = value
