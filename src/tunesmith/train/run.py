"""One readable orchestration of a training run: config -> tokenizer -> template -> data -> model ->
method -> Trainer -> save. Everything stage-specific sits behind the Stage protocol."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..config.errors import ConfigError
from ..config.schema import Config
from ..model.load import count_parameters, load_model
from ..model.methods import apply_method, apply_new_rows_only
from .callbacks.checkpoint_marker import CheckpointMarkerCallback, checkpoints, last_complete_checkpoint
from .prepare import prepare
from .save import write_run_card
from .speed import (allocator_settings, checkpointing_arguments, chunked_head_loss, compile_failure, compile_layers,
                    gpu_input_arguments, half_precision, layer_compilation, liger_note, token_budget_batches)

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    output_dir: Path
    train_loss: float | None
    global_step: int
    trainable_params: int
    total_params: int


def resume_point(cfg: Config) -> str | None:
    """The checkpoint to resume from, or None for a fresh start; refuses to clobber an existing run."""
    out = Path(cfg.output_dir)
    requested = cfg.training.get("resume_from_checkpoint")
    if requested is True or (isinstance(requested, str) and requested.lower() == "true"):
        last = last_complete_checkpoint(out)
        if last is None:
            raise ConfigError(f"`resume_from_checkpoint: true` but {out} holds no complete checkpoint")
        return str(last)
    if isinstance(requested, str) and requested:
        if not Path(requested).is_dir():
            raise ConfigError(f"`resume_from_checkpoint`: {requested} is not a directory")
        return requested
    if out.is_dir() and any(out.iterdir()) and not cfg.run.overwrite_output_dir:
        last = last_complete_checkpoint(out)
        if last is not None:
            logger.info("Resuming training from %s (set overwrite_output_dir: true to start over)", last)
            return str(last)
        raise ConfigError(f"output_dir {out} already exists and is not empty; set `overwrite_output_dir: true` "
                          "to write into it, or choose another `output_dir`")
    if any(not complete for _, _, complete in checkpoints(out)):
        logger.warning("ignoring incomplete checkpoints in %s", out)
    return None


def precision(cfg: Config) -> tuple[object, dict]:
    """dtype to load the model in, and TrainingArguments overrides. bf16/fp16/pure_bf16 fall back to float32
    on machines without a CUDA GPU, with one warning. pure_bf16: bfloat16 weights and no autocast."""
    import torch

    wants_bf16, wants_fp16 = bool(cfg.training.get("bf16")), bool(cfg.training.get("fp16"))
    if not torch.cuda.is_available():
        if wants_bf16 or wants_fp16 or cfg.speed.pure_bf16:
            logger.warning("%s requested but no CUDA GPU is available: training in float32 on the CPU",
                           "pure_bf16" if cfg.speed.pure_bf16 else "bf16" if wants_bf16 else "fp16")
        return torch.float32, {"bf16": False, "fp16": False, "dataloader_pin_memory": False}
    if cfg.speed.pure_bf16:
        return torch.bfloat16, {"bf16": False, "fp16": False}
    if cfg.finetuning.finetuning_type == "full" or not (wants_bf16 or wants_fp16):
        return torch.float32, {}  # float32 master weights, autocast for bf16/fp16
    return (torch.bfloat16 if wants_bf16 else torch.float16), {}


def training_arguments(cfg: Config, overrides: dict):
    from transformers import TrainingArguments

    kwargs = {"report_to": "none", "remove_unused_columns": False, "label_names": ["labels"],
              "save_only_model": False}
    kwargs.update(cfg.training)
    kwargs.update(overrides)
    kwargs.pop("resume_from_checkpoint", None)
    kwargs.update(checkpointing_arguments(cfg))
    cores = os.cpu_count() or 1
    if kwargs.get("dataloader_num_workers", 0) > cores:
        logger.info("dataloader_num_workers=%d capped to the %d CPU cores of this machine",
                    kwargs["dataloader_num_workers"], cores)
        kwargs["dataloader_num_workers"] = cores
    kwargs.pop("do_train", None)
    kwargs.update(gpu_input_arguments(kwargs, cores, cfg.data.streaming))
    try:
        return TrainingArguments(**kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"invalid training arguments: {err}") from None


def setup_model(cfg: Config, prepared, seed: int):
    """Model in the right dtype, tokens resized and initialised, the method applied, and the gates that
    decide what trains when. Returns (model, gates, TrainingArguments overrides)."""
    import torch

    from ..model.tokens import find_extra_id_tokens
    from .schedule import build_schedule
    from .token_training import build_gates, prepare_model

    dtype, overrides = precision(cfg)
    packed_half = prepared.data.packed and half_precision(cfg)
    model = load_model(cfg.model, dtype, head=getattr(prepared.stage, "model_head", "lm"),
                       pad_token_id=prepared.tokenizer.pad_token_id, packed=packed_half)
    added = prepared.added
    grew = prepare_model(model, prepared.tokenizer, added, cfg.tokens, seed)
    if cfg.tokens.train_new_tokens_only:
        model = apply_new_rows_only(model, cfg.finetuning.finetuning_type, added.all_ids)
    else:
        # rows of new tokens, or of tokens the config sets a schedule for, must be able to train
        rows_matter = grew or (cfg.tokens.freeze_extra_id_steps > 0 and bool(find_extra_id_tokens(prepared.tokenizer)))
        model = apply_method(model, cfg.model, cfg.finetuning, train_embeddings=rows_matter)
    gates = build_gates(model, prepared.tokenizer, added, cfg.tokens)
    if cfg.tokens.unfreeze_schedule:
        gates = gates.merged(build_schedule(model, cfg.tokens.unfreeze_schedule, added.all_ids))
    if not (cfg.speed.pure_bf16 and dtype == torch.bfloat16):
        for param in model.parameters():
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()  # trainable weights are kept in float32
    if layer_compilation(cfg, packed_half):
        compile_layers(model)
    trainable, total = count_parameters(model)
    logger.info("trainable params: %s || all params: %s || trainable%%: %.4f", f"{trainable:,}", f"{total:,}",
                100.0 * trainable / max(total, 1))
    if cfg.model.print_param_status:
        for name, param in model.named_parameters():
            logger.info("%s %s %s trainable=%s", name, tuple(param.shape), param.dtype, param.requires_grad)
    return model, gates, overrides


def make_reference(cfg: Config, model, args):
    """The reference model of dpo/kto (see stages/preference/reference.py for the rules)."""
    import torch

    from ..stages.preference.reference import build_reference

    dtype, _ = precision(cfg)
    if torch.cuda.is_available() and (args.bf16 or args.fp16):
        dtype = torch.bfloat16 if args.bf16 else torch.float16  # a frozen model needs no float32 master copy

    def load(path: str, dt):
        return load_model(replace(cfg.model, model_name_or_path=path, adapter_name_or_path=()), dt)

    return build_reference(cfg.preference, cfg.finetuning.finetuning_type, model, load, dtype,
                           model.get_input_embeddings().weight.shape[0])


def precompute_reference(stage_loss, reference, model, collator, data, args) -> None:
    """Score every training and evaluation example with the reference once; the values ride with the
    examples from then on (the stage's collator passes them to the loss)."""
    import torch
    from tqdm.auto import tqdm

    from ..data.cache import wait_for_writes
    from ..data.collate import EncodedDataset

    wait_for_writes()  # the cache writer must not see examples change under it
    device = args.device
    model.to(device).eval()  # Trainer switches it back to training mode
    for split in (data.train, data.eval or []):
        if not isinstance(split, list):
            raise ConfigError("`precompute_ref_log_probs` needs the data in memory (not `streaming: true`)")
        size, items = args.per_device_eval_batch_size, EncodedDataset(split)
        for start in tqdm(range(0, len(split), size), desc="reference log-probs", disable=args.disable_tqdm):
            chunk = split[start:start + size]
            batch = collator([items[i] for i in range(start, start + len(chunk))])
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            fields = stage_loss.reference_fields(reference, model, batch)
            for i, ex in enumerate(chunk):
                ex.meta.update({name: values[i] for name, values in fields.items()})
    logger.info("reference log-probs precomputed for %d examples; no reference model is kept in memory",
                len(data.train) + len(data.eval or []))


def run_training(cfg: Config, extra_callbacks: list | None = None) -> RunResult:
    allocator_settings(cfg)
    liger_note(cfg)
    from transformers import set_seed

    from ..data.collate import Collator, EncodedDataset
    from ..model.attention import VARLEN_IMPLEMENTATIONS
    from .callbacks.log_file import LogFileCallback
    from .callbacks.gates import GateCallback
    from .callbacks.phases import PhaseLogCallback
    from .token_metrics import SpecialTokenMeter, argmax_logits, special_token_f1
    from .token_training import loss_weights, monitored_tokens
    from .plot import plot_loss, plot_rewards, plot_special
    from .trainer import TunesmithTrainer

    if cfg.stage == "ppo":  # its own loop: rollouts, rewards and PPO updates instead of Trainer
        from .ppo.run import run_ppo

        return run_ppo(cfg, extra_callbacks)
    resume = resume_point(cfg)
    seed = int(cfg.training.get("seed", 42))
    set_seed(seed)
    prepared = prepare(cfg)
    tokenizer, stage, data = prepared.tokenizer, prepared.stage, prepared.data

    model, gates, overrides = setup_model(cfg, prepared, seed)
    trainable, total = count_parameters(model)
    args = training_arguments(cfg, overrides)
    stage_loss = stage.make_loss(cfg) if hasattr(stage, "make_loss") else None
    token_weights = loss_weights(tokenizer, cfg.tokens, model.get_input_embeddings().weight.shape[0])
    compiled = layer_compilation(cfg, data.packed and half_precision(cfg))
    head_loss = chunked_head_loss(cfg, model, args, token_weights, compiled) if stage_loss is None else None
    if hasattr(stage, "collator"):
        collator = stage.collator(tokenizer.pad_token_id)
    else:  # compiled layers see one row width: packed rows are padded to cutoff_len
        width = cfg.data.cutoff_len if data.packed and compiled else 0
        collator = Collator(tokenizer.pad_token_id, loss_index=head_loss is not None, width=width,
                            boundaries=model.config._attn_implementation in VARLEN_IMPLEMENTATIONS)
    reference, reference_facts = None, {}
    if getattr(stage, "uses_reference", lambda c: False)(cfg):
        reference = make_reference(cfg, model, args)
        reference_facts = {"kind": reference.kind, "extra_parameter_bytes": reference.extra_bytes(model),
                           "precomputed": cfg.preference.precompute_ref_log_probs}
        logger.info("reference: %s, adding %.1f MB of parameters to the policy's", reference.kind,
                    reference_facts["extra_parameter_bytes"] / 2**20)
        if cfg.preference.precompute_ref_log_probs:
            precompute_reference(stage_loss, reference, model, collator, data, args)
            reference = None  # every batch now carries the reference's log-probs; the model is released
            reference_facts["extra_parameter_bytes"] = 0
    batches = token_budget_batches(cfg, data, args)
    phase_log = [PhaseLogCallback([p.name for p in data.parts], data.phase_sizes,
                                  batches.phase_batch_counts if batches else None)] if data.phase_sizes else []
    special = monitored_tokens(tokenizer, prepared.added, cfg.tokens)
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    trainer = TunesmithTrainer(
        model=model,
        args=args,
        train_dataset=EncodedDataset(data.train) if isinstance(data.train, list) else data.train,
        eval_dataset=EncodedDataset(data.eval) if data.eval else None,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[LogFileCallback(cfg.output_dir), CheckpointMarkerCallback(), *phase_log,
                   *([GateCallback(gates)] if gates else []), *(extra_callbacks or [])],
        stage=stage,
        phase_sizes=data.phase_sizes,
        shuffle=not cfg.data.disable_shuffling,
        token_weights=token_weights,
        special_meter=SpecialTokenMeter(list(special.values())) if special else None,
        stage_loss=stage_loss,
        reference=reference,
        head_loss=head_loss,
        train_batches=batches,
        **(dict(compute_metrics=lambda p: special_token_f1(p.predictions, p.label_ids, special),
                preprocess_logits_for_metrics=argmax_logits) if special and data.eval and not stage_loss else {}),
    )
    try:
        result = trainer.train(resume_from_checkpoint=resume)
    except Exception as err:  # noqa: BLE001 - only torch.compile's errors are translated
        if compiled and compile_failure(err):
            raise ConfigError(f"compiling the decoder layers failed ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''}); set `compile_layers: false` "
                              "to train them eagerly") from err
        raise
    trainer.save_model(cfg.output_dir)
    trainer.save_state()
    train_loss = result.metrics.get("train_loss")
    write_run_card(cfg, cfg.output_dir, trainable_params=trainable, total_params=total,
                   global_step=trainer.state.global_step, train_loss=train_loss,
                   examples=len(data.train) if isinstance(data.train, list) else None, resumed_from=resume,
                   added_tokens=prepared.added.ids, embedding_rows=model.get_input_embeddings().weight.shape[0],
                   model_head=getattr(stage, "model_head", "lm"), reference=reference_facts or None)
    if cfg.finetuning.plot_loss:
        for path in plot_loss(cfg.output_dir) + plot_special(cfg.output_dir) + plot_rewards(cfg.output_dir):
            logger.info("plot written to %s", path)
    logger.info("model saved to %s", cfg.output_dir)
    return RunResult(Path(cfg.output_dir), train_loss, trainer.state.global_step, trainable, total)
