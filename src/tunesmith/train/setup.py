"""What every training loop shares, built from the run plan: the output-dir and resume policy, the model with
its method, tokens and gates, the reference policy, TrainingArguments, and (for loops without Trainer) the
optimizer and scheduler from `optim` / `lr_scheduler_type` exactly as Trainer builds them."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..config.errors import ConfigError
from ..config.schema import Config
from ..model.load import count_parameters, load_model
from ..model.methods import apply_method, apply_new_rows_only
from ..model.quantize import prepare_for_training
from .callbacks.checkpoint_marker import checkpoints, clear_markers, last_complete_checkpoint, read_settings
from .plan import RunPlan, checkpointing_arguments
from .early_stop import early_stopping_arguments
from .speed import gpu_input_arguments

logger = logging.getLogger(__name__)


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


@dataclass
class RunResult:
    output_dir: Path
    train_loss: float | None
    global_step: int
    trainable_params: int
    total_params: int


# settings that may change between a checkpoint and its resumed run: they change how the run is logged,
# saved, evaluated or computed, never what it trains (the speed paths keep results exact)
RESUMABLE_CHANGES = frozenset({
    "logging_steps", "logging_strategy", "logging_first_step", "save_steps", "save_strategy", "save_total_limit",
    "eval_steps", "eval_strategy", "eval_dataset", "per_device_eval_batch_size", "eval_delay", "compute_accuracy",
    "plot_loss", "report_to", "disable_tqdm", "run_name", "logging_dir", "dataloader_num_workers",
    "dataloader_pin_memory", "dataloader_persistent_workers", "dataloader_prefetch_factor", "output_dir",
    "overwrite_output_dir", "resume_from_checkpoint", "do_train", "do_eval", "overwrite_cache",
    "preprocessing_num_workers", "preprocessing_batch_size", "tokenized_path", "print_param_status",
    "special_token_metrics", "ddp_timeout", "trust_remote_code", "cache_dir", "hf_hub_token", "ms_hub_token",
    "load_best_model_at_end", "metric_for_best_model", "greater_is_better", "chunked_loss", "loss_chunk_size",
    "compile_layers", "shared_prompt", "enable_liger_kernel", "cuda_alloc_conf", "flash_attn", "low_cpu_mem_usage",
    "use_fast_tokenizer", "include_num_input_tokens_seen", "save_only_model", "save_safetensors",
    "processes",
})
# the training processes (torchrun's WORLD_SIZE) and the examples each takes per micro-batch: a checkpoint resumes
# on another number of processes when the global batch (their product) stays the same
BATCH_SPLIT = ("processes", "per_device_train_batch_size")
TRAINING_SECTIONS = ("model", "data", "finetuning", "tokens", "preference", "ppo", "grpo", "speed", "run",
                     "generating")


def run_settings(cfg: Config) -> dict:
    """Every setting of the run as flat keys (what a checkpoint records and a resumed run is compared with)."""
    from dataclasses import asdict

    flat: dict = {}
    for section in TRAINING_SECTIONS:
        flat.update(asdict(getattr(cfg, section)))  # noqa: B009 - the section names are the Config's fields
    flat.update(cfg.training)
    flat["processes"] = int(os.environ.get("WORLD_SIZE", "1"))
    return json.loads(json.dumps(flat, default=str))  # as stored: tuples become lists


def global_batch(settings: dict) -> int | None:
    """Examples per micro-batch over all processes (transformers' default per-device batch is 8), or None for
    settings that do not record the processes (an older checkpoint)."""
    if settings.get("processes") is None:
        return None
    return int(settings.get("per_device_train_batch_size") or 8) * int(settings["processes"])


def check_resume_settings(cfg: Config, checkpoint: Path) -> None:
    """A checkpoint continues only the run it belongs to: settings that change what is trained (data, model,
    method, optimisation and its schedule, which the checkpoint's optimizer and scheduler state carry on) must
    equal the checkpoint's; logging, saving, evaluation and speed settings may change (logged)."""
    compare_settings(read_settings(checkpoint), run_settings(cfg), str(checkpoint))


def compare_settings(stored: dict | None, now: dict, what: str) -> None:
    """Log the changes a resumed (or finished) run may take; refuse the others, listing each."""
    if stored is None:
        logger.warning("%s records no settings (written by an older tunesmith): they cannot be compared", what)
        return
    changed = {key: (stored.get(key), now.get(key)) for key in sorted(set(stored) | set(now))
               if stored.get(key) != now.get(key)}
    resumable = RESUMABLE_CHANGES
    if global_batch(stored) is not None and global_batch(stored) == global_batch(now):
        resumable = resumable | set(BATCH_SPLIT)  # the same global batch, split over other processes
    for key, (old, new) in changed.items():
        if key in resumable:
            logger.info("`%s` changed since %s (%r -> %r): it does not change what is trained", key, what, old, new)
    refused = {k: v for k, v in changed.items() if k not in resumable}
    if refused:
        listed = "; ".join(f"`{k}` {old!r} -> {new!r}" for k, (old, new) in refused.items())
        raise ConfigError(f"{what} was trained with other settings: {listed}. These change what is trained (a "
                          "resumed run keeps the checkpoint's optimizer state and learning-rate schedule, so new "
                          "values would be mixed with old ones). Set them back to resume; set `overwrite_output_dir: "
                          "true` to start over; or start a new run from this one's weights in another output_dir")


def finished_run(cfg: Config) -> RunResult | None:
    """A run that already finished in output_dir (its run card, written last, is there) and that this config
    would only repeat: nothing to train (said so). Other settings are refused as for a resume."""
    from ..utils.run_card import read_run_card

    card = read_run_card(cfg.output_dir) if Path(cfg.output_dir).is_dir() else None
    if card is None or cfg.run.overwrite_output_dir:
        return None
    compare_settings(card.get("settings"), run_settings(cfg), f"the finished run in {cfg.output_dir}")
    logger.info("%s holds this run, finished at step %s: nothing to train (set overwrite_output_dir: true to train "
                "it again)", cfg.output_dir, card.get("global_step"))
    return RunResult(Path(cfg.output_dir), card.get("train_loss"), card.get("global_step", 0),
                     card.get("trainable_params", 0), card.get("total_params", 0))


def writable_output_dir(output_dir: str) -> None:
    """Read-only, a file on the way, no space: one line naming the path, before anything loads. Nothing is
    created here: the nearest existing folder on the way is probed (a run that fails before training leaves
    no output_dir behind)."""
    from ..utils.files import check_writable_dir

    existing = Path(output_dir)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    check_writable_dir(existing, "output_dir" if existing == Path(output_dir) else f"output_dir {output_dir}: folder")


RUN_FILES = ("trainer_log.jsonl", "training_loss.png", "training_special.png", "training_rewards.png")


def only_an_interrupted_start(out: Path) -> bool:
    """Whether a folder holds nothing but a tunesmith run's own files from before its first complete checkpoint
    (its log, plots and incomplete checkpoint folders): nothing a user made, nothing to resume."""
    incomplete = {path.name for _, path, done in checkpoints(out) if not done}
    return all(entry.name in RUN_FILES or entry.name in incomplete for entry in out.iterdir())


def resume_point(cfg: Config, resumable: bool = True) -> str | None:
    """The checkpoint to resume from, or None for a fresh start; refuses to clobber an existing run. A loop
    that cannot resume (``resumable=False``) starts fresh and still refuses a non-empty output_dir."""
    out = Path(cfg.output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output_dir {out} is a file; choose a folder for `output_dir`")
    requested = cfg.training.get("resume_from_checkpoint")
    if resumable and (requested is True or (isinstance(requested, str) and requested.lower() == "true")):
        last = last_complete_checkpoint(out)
        if last is None:
            raise ConfigError(f"`resume_from_checkpoint: true` but {out} holds no complete checkpoint")
        check_resume_settings(cfg, last)
        return str(last)
    if resumable and isinstance(requested, str) and requested:
        if not Path(requested).is_dir():
            raise ConfigError(f"`resume_from_checkpoint`: {requested} is not a directory")
        if not (Path(requested) / "trainer_state.json").is_file():
            raise ConfigError(f"`resume_from_checkpoint`: {requested} is not a complete checkpoint (no "
                              "trainer_state.json: its save was interrupted); point it at a complete one, or set "
                              "it to true for the newest complete checkpoint of output_dir")
        check_resume_settings(cfg, Path(requested))
        return requested
    if out.is_dir() and any(out.iterdir()) and not cfg.run.overwrite_output_dir:
        last = last_complete_checkpoint(out) if resumable else None
        if last is not None:
            check_resume_settings(cfg, last)
            logger.info("Resuming training from %s (set overwrite_output_dir: true to start over)", last)
            return str(last)
        if resumable and only_an_interrupted_start(out):
            logger.info("%s holds only what a run interrupted before its first complete checkpoint left: starting "
                        "over", out)
            return None
        raise ConfigError(f"output_dir {out} already exists and is not empty; set `overwrite_output_dir: true` "
                          "to write into it, or choose another `output_dir`")
    if cfg.run.overwrite_output_dir and (cleared := clear_markers(out)):
        logger.info("overwrite_output_dir: %d checkpoint(s) of an earlier run in %s no longer count as complete",
                    cleared, out)
    if any(not complete for _, _, complete in checkpoints(out)):
        logger.warning("ignoring incomplete checkpoints in %s", out)
    return None


def training_arguments(cfg: Config, plan: RunPlan):
    from transformers import TrainingArguments

    kwargs = {"report_to": "none", "remove_unused_columns": False, "label_names": ["labels"],
              "save_only_model": False}
    kwargs.update(cfg.training)
    if not plan.cuda:
        kwargs.update(bf16=False, fp16=False, dataloader_pin_memory=False)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun's processes on the CPU: without use_cpu,
            kwargs.setdefault("use_cpu", True)         # transformers leaves each to train alone (no gloo group)
    elif plan.autocast is None:
        kwargs.update(bf16=False, fp16=False)  # pure_bf16: bfloat16 weights, no autocast
    kwargs.pop("resume_from_checkpoint", None)
    kwargs.pop("save_total_limit", None)  # rotation happens after a checkpoint is marked complete (callbacks/)
    kwargs.setdefault("logging_nan_inf_filter", False)  # logged losses are the true values, nan included
    kwargs.update(checkpointing_arguments(cfg))
    kwargs.update(early_stopping_arguments(cfg))
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


@dataclass
class Policy:
    """The model being trained and what decides which of its weights train when."""

    model: object
    gates: object  # train.gates.Gates
    trainable_params: int
    total_params: int
    embedding_rows: int


def setup_model(cfg: Config, plan: RunPlan, prepared) -> Policy:
    """Model in the planned dtype, tokens resized and initialised, the method applied, and the gates that
    decide what trains when."""
    import torch

    from ..model.tokens import find_extra_id_tokens
    from .schedule import build_schedule
    from .speed import compile_layers
    from .token_training import build_gates, prepare_model

    model = load_model(cfg.model, torch_dtype(plan.load_dtype), attn=plan.attention, head=plan.model_head,
                       pad_token_id=prepared.tokenizer.pad_token_id)
    added = prepared.added
    grew = prepare_model(model, prepared.tokenizer, added, cfg.tokens, plan.seed)
    model = prepare_for_training(model, cfg.finetuning.finetuning_type, checkpointing_arguments(cfg))  # QLoRA
    if cfg.tokens.train_new_tokens_only:
        model = apply_new_rows_only(model, cfg.finetuning.finetuning_type, added.all_ids)
    else:
        # rows of new tokens, or of tokens the config sets a schedule for, must be able to train
        rows_matter = grew or (cfg.tokens.freeze_extra_id_steps > 0 and bool(find_extra_id_tokens(prepared.tokenizer)))
        model = apply_method(model, cfg.model, cfg.finetuning, train_embeddings=rows_matter, media=cfg.media)
    gates = build_gates(model, prepared.tokenizer, added, cfg.tokens)
    if cfg.tokens.unfreeze_schedule:
        gates = gates.merged(build_schedule(model, cfg.tokens.unfreeze_schedule, added.all_ids))
    if plan.trainable_float32:
        for param in model.parameters():
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()  # trainable weights are kept in float32
    if plan.compile_layers:
        compile_layers(model)
    trainable, total = count_parameters(model)
    logger.info("trainable params: %s || all params: %s || trainable%%: %.4f", f"{trainable:,}", f"{total:,}",
                100.0 * trainable / max(total, 1))
    if cfg.model.print_param_status:
        for name, param in model.named_parameters():
            logger.info("%s %s %s trainable=%s", name, tuple(param.shape), param.dtype, param.requires_grad)
    return Policy(model, gates, trainable, total, model.get_input_embeddings().weight.shape[0])


def build_reference(cfg: Config, plan: RunPlan, model):
    """The planned reference policy (see train/reference.py for the rules), or None."""
    from .reference import build_reference as build

    if plan.reference is None:
        return None

    def load(path: str, dt):
        return load_model(replace(cfg.model, model_name_or_path=path, adapter_name_or_path=(),
                                  quantization_bit=cfg.preference.ref_model_quantization_bit), dt)

    reference = build(cfg.preference, cfg.finetuning.finetuning_type, model, load,
                      torch_dtype(plan.reference_dtype), model.get_input_embeddings().weight.shape[0])
    logger.info("reference: %s, adding %.1f MB of parameters to the policy's", reference.kind,
                reference.extra_bytes(model) / 2**20)
    return reference


def create_optimizer(model, args, finetuning=None):
    """The optimizer Trainer would build for ``args`` (`optim`, `optim_args`, learning rate, betas, epsilon,
    weight decay on every weight but norms and biases), or the optimizer family ``finetuning`` turns on."""
    from transformers import Trainer

    from ..model.compat import decay_parameter_names
    from .optimizers import build_optimizer

    if finetuning is not None and (chosen := build_optimizer(model, args, finetuning)) is not None:
        return chosen

    decay = set(decay_parameter_names(model))
    groups = [{"params": [p for n, p in model.named_parameters() if p.requires_grad and n in decay],
               "weight_decay": args.weight_decay},
              {"params": [p for n, p in model.named_parameters() if p.requires_grad and n not in decay],
               "weight_decay": 0.0}]
    cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    special = {"params", "model", "optimizer_dict"} & set(kwargs)
    if special or not isinstance(cls, type):
        raise ConfigError(f"`optim: {args.optim}` manages its own parameter groups inside transformers' Trainer and "
                          "is not available in this loop; use an AdamW variant (e.g. adamw_torch) or SGD/Adafactor")
    return cls(groups, **kwargs)


def create_scheduler(optimizer, args, num_training_steps: int):
    """`lr_scheduler_type` with `warmup_ratio` / `warmup_steps` and `lr_scheduler_kwargs`, as Trainer."""
    from transformers import get_scheduler

    return get_scheduler(args.lr_scheduler_type, optimizer,
                         num_warmup_steps=args.get_warmup_steps(num_training_steps),
                         num_training_steps=num_training_steps,
                         scheduler_specific_kwargs=args.lr_scheduler_kwargs or {})
