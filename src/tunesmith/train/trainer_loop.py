"""The Trainer loop (every stage whose ``loop`` is ``trainer``): collator, loss and data order from the run
plan and the stage, then transformers' Trainer trains, saves and checkpoints."""

from __future__ import annotations

import logging
from pathlib import Path

from ..config.errors import ConfigError
from ..config.schema import Config
from ..model.compat import is_compile_error
from ..model.peft_variants import pissa_start, save_pissa_converted
from ..stages.base import Stage
from .loss_variants import loss_variant
from .plan import RunPlan
from .setup import Policy, RunResult, build_reference, run_settings, training_arguments

logger = logging.getLogger(__name__)


def causal_lm_collator(plan: RunPlan, pad_token_id: int, chunked: bool, training: bool = True):
    """Training batches as the plan lays them out; evaluation batches keep one example per row (per-example
    metrics need them), padded."""
    from ..data.collate import Collator

    return Collator(pad_token_id, loss_index=chunked, width=plan.collator_width,
                    boundaries=plan.sequence_boundaries, padding_free=training and plan.batching == "padding-free")


def chunked_head_loss(cfg: Config, plan: RunPlan, model, args, token_weights):
    """The chunked causal-LM loss the plan chose, checked against the loaded model's head."""
    import torch

    from .head_loss import HeadLoss, chunked_loss_blocker

    if plan.loss != "chunked":
        if cfg.speed.chunked_loss:  # wanted, but the plan found a reason against it
            logger.info("chunked_loss: not used because %s; the standard loss computes full logits",
                        plan.loss_reason)
        return None
    reason = chunked_loss_blocker(model)
    if reason is not None:  # the plan reads the config; the model must agree, or the plan has a gap
        raise RuntimeError(f"the run plan chose the chunked loss but the loaded model cannot serve it ({reason}); "
                           "set `chunked_loss: false` and please report this")
    dtype = torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else None  # autocast's matmul dtype
    return HeadLoss(model, cfg.speed.loss_chunk_size, dtype, token_weights, compiled=plan.compile_layers,
                    variant=loss_variant(cfg))


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


def precompute_reference(stage_loss, reference, model, collator, data, args) -> tuple[list, list | None]:
    """Score every training and evaluation example with the reference once. Returns the values per example
    (train, eval), which ride beside the examples from then on (the stage's collator passes them to the loss);
    the encoded examples themselves are not changed."""
    import torch
    from tqdm.auto import tqdm

    from ..data.collate import EncodedDataset

    device = args.device
    model.to(device).eval()  # Trainer switches it back to training mode
    out = []
    for split in (data.train, data.eval or []):
        size, items, values = args.per_device_eval_batch_size, EncodedDataset(split), []
        for start in tqdm(range(0, len(split), size), desc="reference log-probs", disable=args.disable_tqdm):
            batch = collator([items[i] for i in range(start, min(start + size, len(split)))])
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            fields = stage_loss.reference_fields(reference, model, batch)
            values += [{name: column[i] for name, column in fields.items()} for i in range(len(next(iter(
                fields.values()))))]
        out.append(values)
    logger.info("reference log-probs precomputed for %d examples; no reference model is kept in memory",
                len(data.train) + len(data.eval or []))
    return out[0], (out[1] if data.eval else None)


def log_steps_per_epoch(data, args, plan: RunPlan, batches) -> None:
    """How many optimizer steps an epoch takes, and what a step trains on (as Trainer counts them)."""
    import math

    if not isinstance(data.train, list):
        return
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    loader = len(batches) if batches is not None else math.ceil(len(data.train) / (
        args.per_device_train_batch_size * args.world_size))
    steps = max(math.ceil(loader / args.gradient_accumulation_steps), 1)
    unit = "packed rows" if plan.batching == "packed" else "examples"
    what = "a token budget per micro-batch" if batches is not None else f"{per_step} {unit} per step"
    logger.info("%d %s -> %d optimizer steps per epoch (%s)", len(data.train), unit, steps, what)


def evaluation_metrics(prediction, special: dict[str, int], accuracy: bool) -> dict[str, float]:
    """What evaluation reports from the predicted ids: special-token F1 and `compute_accuracy`'s accuracy."""
    from .token_metrics import special_token_f1, token_accuracy

    out = special_token_f1(prediction.predictions, prediction.label_ids, special) if special else {}
    if accuracy:
        out["accuracy"] = token_accuracy(prediction.predictions, prediction.label_ids)
    return out


def train(trainer, plan: RunPlan, resume: str | None) -> float | None:
    """Trainer's loop (resumed from ``resume``), returning the mean training loss. A checkpoint that already is
    the run's last step (a run killed during its final save) is only loaded: transformers would train one step
    past `max_steps` from it."""
    import json

    if resume is not None and trainer.args.max_steps > 0:
        step = json.loads((Path(resume) / "trainer_state.json").read_text(encoding="utf-8"))["global_step"]
        if step >= trainer.args.max_steps:
            logger.info("%s is the run's last step (%d): finishing its save without training", resume, step)
            trainer.load_checkpoint_weights(resume)
            return None
    try:
        return trainer.train(resume_from_checkpoint=resume).metrics.get("train_loss")
    except Exception as err:  # noqa: BLE001 - only torch.compile's errors are translated
        if plan.compile_layers and is_compile_error(err):
            raise ConfigError(f"compiling the decoder layers failed ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''}); set `compile_layers: false` "
                              "to train them eagerly") from err
        raise


def train_with_trainer(cfg: Config, plan: RunPlan, stage: Stage, prepared, policy: Policy, resume: str | None,
                       callbacks: list) -> RunResult:
    from ..data.collate import EncodedDataset
    from .callbacks.gates import GateCallback
    from .callbacks.phases import PhaseLogCallback
    from .optimizers import OptimizerChoice
    from .plot import plot_loss, plot_rewards, plot_special
    from .save import write_run_card
    from .token_metrics import SpecialTokenMeter, argmax_logits
    from .token_training import loss_weights, monitored_tokens
    from .trainer import TunesmithTrainer

    tokenizer, data, model = prepared.tokenizer, prepared.data, policy.model
    args = training_arguments(cfg, plan)
    stage_loss = stage.loss(cfg)
    token_weights = loss_weights(tokenizer, cfg.tokens, policy.embedding_rows)
    head_loss = chunked_head_loss(cfg, plan, model, args, token_weights) if plan.loss != "stage" else None
    own = stage.collator(tokenizer.pad_token_id, shared_prompt=True) if plan.shared_prompt else \
        stage.collator(tokenizer.pad_token_id)  # a stage's own batches serve training and evaluation alike
    collator = own or causal_lm_collator(plan, tokenizer.pad_token_id, head_loss is not None)
    eval_collator = own or causal_lm_collator(plan, tokenizer.pad_token_id, head_loss is not None, training=False)
    if prepared.media is not None:  # vision inputs beside the tokens
        from ..data.collate_media import MediaCollator

        pairs = plan.data_kind == "pairwise"
        collator, eval_collator = (MediaCollator(c, prepared.media, pairs) for c in (collator, eval_collator))
    reference = build_reference(cfg, plan, model)
    reference_facts = None if reference is None else {
        "kind": reference.kind, "extra_parameter_bytes": 0 if plan.reference_precomputed else
        reference.extra_bytes(model), "precomputed": plan.reference_precomputed}
    train_extra = eval_extra = None
    if plan.reference_precomputed:
        train_extra, eval_extra = precompute_reference(stage_loss, reference, model, collator, data, args)
        reference = None  # every batch now carries the reference's log-probs; the model is released
    batches = token_budget_batches(cfg, data, args)
    log_steps_per_epoch(data, args, plan, batches)
    phase_log = [PhaseLogCallback([p.name for p in data.parts], data.phase_sizes,
                                  batches.phase_batch_counts if batches else None)] if data.phase_sizes else []
    special = monitored_tokens(tokenizer, prepared.added, cfg.tokens)
    metrics = {}
    if data.eval and not stage_loss and (special or cfg.finetuning.compute_accuracy):
        metrics = dict(compute_metrics=lambda p: evaluation_metrics(p, special, cfg.finetuning.compute_accuracy),
                       preprocess_logits_for_metrics=argmax_logits)
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    choice = OptimizerChoice(cfg.finetuning)
    trainer = TunesmithTrainer(
        model=model, args=args, data_collator=collator, processing_class=tokenizer,
        train_dataset=EncodedDataset(data.train, train_extra) if isinstance(data.train, list) else data.train,
        eval_dataset=EncodedDataset(data.eval, eval_extra) if data.eval else None,
        callbacks=[*([GateCallback(policy.gates)] if policy.gates else []), *choice.callbacks(), *phase_log,
                   *callbacks],
        phase_sizes=data.phase_sizes, shuffle=not cfg.data.disable_shuffling, token_weights=token_weights,
        special_meter=SpecialTokenMeter(list(special.values())) if special else None, stage_loss=stage_loss,
        reference=reference, head_loss=head_loss, train_batches=batches, eval_collator=eval_collator,
        loss_variant=loss_variant(cfg), optimizer_choice=choice, **metrics)
    pissa_start(cfg, model, resume, args.should_save)
    train_loss = train(trainer, plan, resume)
    trainer.save_model(cfg.output_dir)
    if prepared.media is not None and args.should_save:  # the output dir serves chat/export on its own
        from ..model.load import model_path
        from ..model.processor import copy_processor_files

        copy_processor_files(Path(model_path(cfg.model)), Path(cfg.output_dir))
    if cfg.finetuning.pissa_convert and args.should_save:
        save_pissa_converted(model, cfg.output_dir)
    trainer.save_state()
    write_run_card(cfg, cfg.output_dir, plan=plan.as_dict(), settings=run_settings(cfg), trainable_params=policy.trainable_params,
                   total_params=policy.total_params, global_step=trainer.state.global_step, train_loss=train_loss,
                   examples=len(data.train) if isinstance(data.train, list) else None, resumed_from=resume,
                   added_tokens=prepared.added.ids, embedding_rows=policy.embedding_rows,
                   model_head=plan.model_head, reference=reference_facts)
    if cfg.finetuning.plot_loss:
        for path in plot_loss(cfg.output_dir) + plot_special(cfg.output_dir) + plot_rewards(cfg.output_dir):
            logger.info("plot written to %s", path)
    logger.info("model saved to %s", cfg.output_dir)
    return RunResult(Path(cfg.output_dir), train_loss, trainer.state.global_step, policy.trainable_params,
                     policy.total_params)
