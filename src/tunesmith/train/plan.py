"""The run plan: every run-time decision of a training run, taken once from the config, the stage's
declarations and this machine, before any model loads. Logged as one block and saved in tunesmith.json;
everything after reads it instead of deciding again.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..config.rules_methods import ADAPTER_TYPES
from ..config.schema import Config
from ..model.vision import COMPOSITE
from ..stages.base import Stage
from .loss_variants import loss_variant

logger = logging.getLogger(__name__)

# config fields of models that transform the logits after the head (soft-capping, scaling)
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


@dataclass(frozen=True)
class RunPlan:
    stage: str
    loop: str  # trainer | rollout (stages/base.py)
    data_kind: str  # data/kinds.py
    model_head: str  # lm | score
    seed: int
    cuda: bool
    load_dtype: str  # the model's weights when loaded: float32 | bfloat16 | float16
    autocast: str | None  # bf16 | fp16 (mixed precision over float32 master weights) or None
    trainable_float32: bool  # trainable weights are upcast to float32 (all but pure_bf16)
    reference_dtype: str | None  # the frozen reference's weights (no float32 master copy needed)
    batching: str  # padded | padding-free (a batch's examples end to end) | packed (rows of cutoff_len)
    pack: bool  # single sequences are laid into shared rows of cutoff_len before training
    packed_rows: bool  # batches carry restarting position ids (padding-free, packed sequences, pt)
    attention: str  # transformers attn_implementation
    sequence_boundaries: bool  # the collator computes varlen boundaries (cu_seq_lens) on the CPU
    compile_layers: bool
    collator_width: int  # rows padded to at least this many tokens (one shape for compiled layers), 0: none
    loss: str  # stage (the stage's own loss) | chunked | standard
    loss_reason: str
    loss_variant: str  # the causal-LM loss's per-token term (train/losses.py LossVariant.describe)
    token_weights: bool  # per-token loss weights are configured
    reference: str | None  # what the reference policy is, or None
    reference_precomputed: bool
    gradient_checkpointing: bool
    shared_prompt: bool = False  # a prompt's replies share one row (stages/preference/shared_prompt.py)
    shared_prompt_reason: str = ""
    multimodal: bool = False  # a vision-language model: batches carry pixel values; rows are padded

    def summary(self) -> str:
        rows = [("stage", f"{self.stage} ({self.data_kind} data, {self.model_head} head, {self.loop} loop)"),
                ("precision", f"weights {self.load_dtype}, autocast {self.autocast or 'off'}, trainable "
                              f"{'float32' if self.trainable_float32 else self.load_dtype}"
                              f" on {'CUDA' if self.cuda else 'CPU'}"),
                ("batching", self.batching
                 + (f", width >= {self.collator_width}" if self.collator_width else "")),
                ("attention", self.attention + (" (sequence boundaries from the collator)"
                                                if self.sequence_boundaries else "")),
                ("compiled layers", "yes" if self.compile_layers else "no"),
                ("loss", f"{self.loss} ({self.loss_reason})"
                         + (f", {self.loss_variant}" if self.loss != "stage" else "")),
                ("token weights", "yes" if self.token_weights else "no"),
                ("reference", (self.reference or "none")
                 + (f", {self.reference_dtype}" if self.reference else "")
                 + (", log-probs precomputed" if self.reference_precomputed else "")),
                ("activation checkpointing", "on" if self.gradient_checkpointing else "off")]
        if self.shared_prompt_reason:
            rows.append(("prompt rows", ("shared: " if self.shared_prompt else "one per reply: ")
                         + self.shared_prompt_reason))
        width = max(len(k) for k, _ in rows)
        return "run plan:\n" + "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)

    def as_dict(self) -> dict:
        return asdict(self)


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


def precision(cfg: Config, cuda: bool) -> tuple[str, str | None, bool]:
    """(weights dtype, autocast, trainable in float32). bf16/fp16/pure_bf16 fall back to float32 on machines
    without a CUDA GPU, with one warning. pure_bf16: bfloat16 weights and no autocast. Full fine-tuning keeps
    float32 master weights under autocast; the other methods load the frozen weights in half precision."""
    wants_bf16, wants_fp16 = bool(cfg.training.get("bf16")), bool(cfg.training.get("fp16"))
    if not cuda:
        if wants_bf16 or wants_fp16 or cfg.speed.pure_bf16:
            logger.warning("%s requested but no CUDA GPU is available: training in float32 on the CPU",
                           "pure_bf16" if cfg.speed.pure_bf16 else "bf16" if wants_bf16 else "fp16")
        return "float32", None, True
    if cfg.speed.pure_bf16:
        return "bfloat16", None, False
    autocast = "bf16" if wants_bf16 else "fp16" if wants_fp16 else None
    if cfg.finetuning.finetuning_type == "full" or autocast is None:
        return "float32", autocast, True
    return ("bfloat16" if wants_bf16 else "float16"), autocast, True


def layer_compilation(cfg: Config, packed_half: bool, cuda: bool) -> bool:
    """`compile_layers`, or when unset: on for packed half-precision training on a CUDA GPU, unless the whole
    model is compiled (`torch_compile`), activations are recomputed (gradient checkpointing) or the model is
    quantized on the fly."""
    if cfg.speed.compile_layers is not None:
        return cfg.speed.compile_layers
    return (packed_half and cuda and not cfg.training.get("torch_compile")
            and not checkpointing_arguments(cfg).get("gradient_checkpointing")
            and cfg.model.quantization_bit is None)  # quantized layers (bitsandbytes, hqq) are not compiled


def multimodal_batching(cfg: Config, layout: str) -> str:
    """A vision-language model computes its 3-D rope positions from each padded row's attention mask: its rows
    are padded (the default for sft is padding-free otherwise; the same examples per step either way), and
    packing, which would lay several examples in one row, is refused."""
    if cfg.data.packing or cfg.data.neat_packing:
        from ..config.errors import ConfigError

        raise ConfigError("`packing` / `neat_packing` with a vision-language model is not supported: Qwen-VL "
                          "computes its 3-D rope positions per row from the attention mask, and a packed row would "
                          "hold several examples; set `packing: false`")
    if layout != "padded":
        logger.info("batching: padded rows (a vision-language model's rope positions are computed per row)")
    return "padded"


def batching(cfg: Config, stage: Stage, packed_by_construction: bool) -> str:
    """How examples form batches, with LLaMA-Factory's meaning of its keys:

    - `packing: true` / `neat_packing: true`: rows of cutoff_len holding several sequences (never attending to
      each other); `per_device_train_batch_size` counts rows, as in LLaMA-Factory's packing;
    - unset (default), for stages whose examples may pack (sft): padding-free, the
      `per_device_train_batch_size` examples of a batch laid end to end (the same examples per step, steps per
      epoch, schedule and loss as LLaMA-Factory's padded batches, without the padding);
    - `packing: false`, and every stage that compares sequences of an example (rm, dpo, kto, ppo): padded rows.
    Text (pt) rows are packed by construction."""
    requested = bool(cfg.data.packing or cfg.data.neat_packing)
    if packed_by_construction:
        return "packed"
    if not stage.packs:
        if requested:
            logger.warning("packing is not applied in stage %s: its examples are groups of sequences compared with "
                           "each other; each group is padded as a batch instead", stage.name)
        return "padded"
    if requested:
        return "packed"
    return "padding-free" if cfg.data.packing is None else "padded"


def model_config(cfg: Config) -> dict:
    """The model's config.json (the plan reads a few fields; the weights are not loaded)."""
    from ..model.load import model_path

    path = Path(model_path(cfg.model)) / "config.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def resumed_adapter_targets(cfg: Config) -> list[str]:
    """Target modules of the adapter training resumes (the last of `adapter_name_or_path`), if any."""
    adapters = cfg.model.adapter_name_or_path
    if cfg.finetuning.finetuning_type not in ADAPTER_TYPES or not adapters or cfg.finetuning.create_new_adapter:
        return []
    path = Path(adapters[-1]) / "adapter_config.json"
    config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    targets = config.get("target_modules") or []
    extra = ["<trainable tokens>"] if config.get("trainable_token_indices") else []
    return ([targets] if isinstance(targets, str) else list(targets)) + extra


def loss_path(cfg: Config, stage: Stage, text_config: dict) -> tuple[str, str]:
    """(stage | chunked | standard, why). The chunked loss needs the head to be a plain linear layer whose
    output is the logits, and unsharded weights."""
    if stage.loss(cfg) is not None:
        return "stage", f"stage {stage.name} computes its own loss"
    if not cfg.speed.chunked_loss:
        return "standard", "chunked_loss: false"
    if cfg.finetuning.use_asft_loss:
        return "standard", "asft compares the whole distribution with the reference's logits"
    if cfg.training.get("fsdp") or cfg.training.get("deepspeed") or \
            os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return "standard", "FSDP/DeepSpeed shard the head's weight outside the forward pass"
    for key in LOGIT_TRANSFORMS:
        value = text_config.get(key)
        if value not in (None, 1, 1.0):
            return "standard", f"the model transforms its logits after the head ({key}={value})"
    if cfg.finetuning.finetuning_type in ADAPTER_TYPES:
        head = {"lm_head", "embed_out", "output"}
        targets = set(cfg.finetuning.lora_target) | set(resumed_adapter_targets(cfg))
        if cfg.tokens.train_new_tokens_only:
            return "standard", "trainable-token rows on the head transform its output"
        if targets & (head | {"<trainable tokens>"}):
            return "standard", "a LoRA adapter on the head transforms its output"
    return "chunked", "from the head's input, trained positions only, no full-vocabulary logits"


def reference_placement(cfg: Config, stage: Stage) -> str | None:
    """What serves as the reference policy (train/reference.py builds it)."""
    if not stage.needs_reference(cfg):
        return None
    if cfg.preference.ref_model:
        return f"ref_model {cfg.preference.ref_model}"
    if cfg.finetuning.finetuning_type in ADAPTER_TYPES:
        return "policy with adapters off"
    return "frozen copy of the starting model"


def make_plan(cfg: Config, stage: Stage) -> RunPlan:
    import torch

    from ..data.kinds import get_kind
    from ..model.attention import VARLEN_IMPLEMENTATIONS, choose_attention
    from ..stages.preference.shared_prompt import layout_choice

    cuda = torch.cuda.is_available()
    kind = get_kind(stage.data_kind)
    dtype, autocast, trainable_float32 = precision(cfg, cuda)
    config = model_config(cfg)
    multimodal = config.get("model_type") in COMPOSITE
    layout = batching(cfg, stage, kind.packed_rows)
    if multimodal:
        layout = multimodal_batching(cfg, layout)
    pack = layout == "packed" and not kind.packed_rows
    packed_rows = layout != "padded"
    half = cuda and bool(cfg.speed.pure_bf16 or autocast)
    compiled = layer_compilation(cfg, layout == "packed" and half, cuda)  # one row shape: rows of cutoff_len
    attention = choose_attention(cfg.model.flash_attn, packed_rows and half, padding_free=layout == "padding-free")
    loss, why = loss_path(cfg, stage, config.get("text_config") or config)
    reference = reference_placement(cfg, stage)
    shared, shared_why = layout_choice(attention, {**config, **(config.get("text_config") or {})}) \
        if stage.shares_prompts else (False, "")
    if shared and not cfg.speed.shared_prompt:
        shared, shared_why = False, "shared_prompt: false"
    if shared and multimodal:
        shared, shared_why = False, "a vision-language model's rope positions are computed per row"
    tokens = cfg.tokens
    return RunPlan(
        stage=stage.name, loop=stage.loop, data_kind=kind.name, model_head=stage.model_head,
        seed=int(cfg.training.get("seed", 42)), cuda=cuda, load_dtype=dtype, autocast=autocast,
        trainable_float32=trainable_float32,
        reference_dtype=(None if reference is None else
                         {"bf16": "bfloat16", "fp16": "float16"}.get(autocast or "", dtype)),
        batching=layout, pack=pack, packed_rows=packed_rows, attention=attention,
        sequence_boundaries=attention in VARLEN_IMPLEMENTATIONS and stage.collator(0) is None and not multimodal,
        compile_layers=compiled, collator_width=cfg.data.cutoff_len if layout == "packed" and compiled else 0,
        loss=loss, loss_reason=why, loss_variant=loss_variant(cfg).describe(),
        token_weights=bool(tokens.token_loss_weights) or tokens.extra_id_loss_weight is not None,
        reference=reference,
        reference_precomputed=reference is not None and cfg.preference.precompute_ref_log_probs,
        gradient_checkpointing=bool(checkpointing_arguments(cfg).get("gradient_checkpointing")),
        shared_prompt=shared, shared_prompt_reason=shared_why, multimodal=multimodal)
