"""The one transformers.Trainer subclass. It computes one of three losses, as the run plan says: the stage's
own (given a LossContext, never the trainer), the chunked causal-LM loss, or the standard one (with per-token
weights and special-token metrics); it also orders the data (phases, token budgets) and reports the stage
metrics. Trainer's private methods are reached only through model/compat.py TrainerHooks."""

from __future__ import annotations

import contextlib

import torch
from torch.utils.data import SequentialSampler
from transformers import Trainer

from ..config.errors import ConfigError
from ..data.sampler import PhasedSampler, TokenBudgetBatches
from ..model.compat import TrainerHooks, rank_aware_batch_sampler_base
from ..stages.base import LossContext
from ..types import IGNORE_INDEX
from .loss_variants import LossVariant
from .losses import shift_labels, token_weight_correction, variant_causal_loss
from .stage_metrics import StageMetrics


class TokenBudgetBatchSampler(TokenBudgetBatches, rank_aware_batch_sampler_base()):
    """TokenBudgetBatches in the form transformers' Trainer takes a rank-aware batch sampler: it becomes the
    DataLoader's batch_sampler and accelerate's per-process sharding is switched off for it."""


class TrainingDiverged(ConfigError):
    """The loss or the gradients stopped being finite: the run stops without saving the broken weights."""


class FiniteGuard:
    """Watches every training loss without waiting for the device: a flag and the first bad step stay on the
    device and are read at logging steps and before any save."""

    def __init__(self) -> None:
        self.bad = self.step = None

    def watch(self, loss, step: int) -> None:
        bad = ~torch.isfinite(loss.detach()).all()
        if self.bad is None:
            self.bad, self.step = bad, torch.where(bad, step, -1)
        else:
            self.step = torch.where(bad & ~self.bad, step, self.step)
            self.bad = self.bad | bad

    def first_bad_step(self) -> int | None:
        return int(self.step) if self.bad is not None and bool(self.bad) else None


class MetricSink:
    """The trainer's side of stages.base.MetricSink: stage metrics per split, special-token statistics while
    training."""

    def __init__(self, trainer: TunesmithTrainer) -> None:
        self.trainer = trainer

    def record(self, **values) -> None:
        self.trainer.metrics.add("train" if self.trainer.model.training else "eval", values)

    def observe_tokens(self, logits, labels) -> None:
        meter = self.trainer.special_meter
        if meter is not None and self.trainer.model.training and labels.numel():
            meter.update(logits.detach(), labels)


class TunesmithTrainer(TrainerHooks, Trainer):
    def __init__(self, *args, phase_sizes: list[int] | None = None, shuffle: bool = True, token_weights=None,
                 special_meter=None, stage_loss=None, reference=None, head_loss=None,
                 train_batches: TokenBudgetBatchSampler | None = None, eval_collator=None, loss_variant=None,
                 optimizer_choice=None, **kwargs) -> None:
        self.optimizer_choice = optimizer_choice  # train.optimizers.OptimizerChoice, or None for `optim`'s own
        super().__init__(*args, **kwargs)
        self.eval_collator = eval_collator or self.data_collator  # evaluation batches: one example per row
        self.phase_sizes = phase_sizes
        self.shuffle = shuffle
        self.token_weights = token_weights  # (V,) loss weight per target token id, or None
        self.special_meter = special_meter  # SpecialTokenMeter or None
        self.stage_loss = stage_loss  # the stage's own loss, or None for the causal-LM loss
        self.head_loss = head_loss  # train.head_loss.HeadLoss (the chunked causal-LM loss), or None
        self.train_batches = train_batches  # token-budget batches, or None for per_device_train_batch_size
        self.loss_variant = loss_variant or LossVariant()  # the causal-LM loss's per-token loss (train/losses.py)
        self.metrics = StageMetrics()
        self.loss_context = LossContext(MetricSink(self), reference, token_weights)
        self.guard = FiniteGuard()
        if stage_loss is not None:
            self.loss_is_scaled_for_ga = False  # a stage loss is a micro-batch mean: Trainer divides by GA steps

    def create_optimizer(self, model=None):
        if self.optimizer is None and self.optimizer_choice:
            self.optimizer = self.optimizer_choice.optimizer(self.model if model is None else model, self.args,
                                                             self.accelerator)
        return super().create_optimizer(model)

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None and self.optimizer_choice:
            self.lr_scheduler = self.optimizer_choice.scheduler(optimizer or self.optimizer, self.args,
                                                                num_training_steps)
        return super().create_scheduler(num_training_steps, optimizer)

    def reduce_sum(self, tensor):
        return self.accelerator.reduce(tensor.to(self.accelerator.device), reduction="sum").cpu()

    def train_sampler(self, dataset):
        if self.train_batches is not None:
            return self.train_batches
        if self.phase_sizes:
            return PhasedSampler(self.phase_sizes, seed=self.args.data_seed or self.args.seed, shuffle=self.shuffle)
        if not self.shuffle:
            return SequentialSampler(dataset)
        return None

    def stop_if_diverged(self, logs: dict | None = None, saving: bool = False) -> None:
        """Raise TrainingDiverged (the run exits non-zero) if a loss, the logged gradient norm or, before a save,
        a trainable weight is not finite."""
        import math

        step = self.guard.first_bad_step()
        logs = logs or {}
        values = {k: logs[k] for k in ("loss", "grad_norm") if isinstance(logs.get(k), float)}
        if step is None and all(math.isfinite(v) for v in values.values()):
            if not saving or all(bool(torch.isfinite(p).all()) for p in self.model.parameters() if p.requires_grad):
                return
        from .callbacks.checkpoint_marker import last_complete_checkpoint

        last = last_complete_checkpoint(self.args.output_dir)
        shown = ", ".join(f"{k} {v}" for k, v in values.items())
        raise TrainingDiverged(
            f"training diverged{f' at step {step}' if step is not None else ''} (step {self.state.global_step}"
            f"{': ' + shown if shown else ''}): the loss or the weights are no longer finite, so nothing was saved "
            f"from here on ({f'the last complete checkpoint is {last}' if last else 'no checkpoint was written'}). "
            f"The usual cause is a learning rate too high for this model (`learning_rate` is "
            f"{self.args.learning_rate}); lower it, keep `max_grad_norm` on, or check the data for extreme values")

    def save_weights(self, output_dir: str) -> bool:
        """A trainable-tokens adapter holds complete rows, so the (resized) base embeddings that peft would
        add to it are not needed: save only the adapter, keeping it small. Nothing is saved from a run whose
        loss or weights stopped being finite."""
        from peft import PeftModel, TrainableTokensConfig

        self.stop_if_diverged(saving=True)
        model = self.model
        if not (isinstance(model, PeftModel) and isinstance(model.peft_config.get("default"), TrainableTokensConfig)):
            return False
        if self.args.should_save:
            model.save_pretrained(output_dir, save_embedding_layers=False)
            if self.processing_class is not None:
                self.processing_class.save_pretrained(output_dir)
        return True

    def get_eval_dataloader(self, eval_dataset=None):
        with self.collating(self.eval_collator):
            return super().get_eval_dataloader(eval_dataset)

    def get_test_dataloader(self, test_dataset):
        with self.collating(self.eval_collator):
            return super().get_test_dataloader(test_dataset)

    @contextlib.contextmanager
    def collating(self, collator):
        training, self.data_collator = self.data_collator, collator
        try:
            yield
        finally:
            self.data_collator = training

    def log(self, logs: dict, *args, **kwargs) -> None:
        if "loss" in logs:
            self.stop_if_diverged(logs)
            if self.special_meter is not None:
                logs.update(self.special_meter.collect(reduce=self.reduce_sum))
            logs.update(self.metrics.collect("train", reduce=self.reduce_sum))
        super().log(logs, *args, **kwargs)

    def evaluation_loop(self, *args, **kwargs):
        self.metrics.collect("eval")  # drop anything left from an interrupted evaluation
        output = super().evaluation_loop(*args, **kwargs)
        prefix = kwargs.get("metric_key_prefix", args[4] if len(args) > 4 else "eval")
        output.metrics.update({f"{prefix}_{k}": v for k, v in self.metrics.collect("eval", self.reduce_sum).items()})
        return output

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        if self.head_loss is not None and "loss_index" in inputs:
            if not prediction_loss_only:  # metrics need the logits: the standard forward
                inputs = {k: v for k, v in inputs.items() if k not in self.head_loss.KEYS}
                return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
            inputs = self.prepare_inputs(inputs)
            with torch.no_grad(), self.compute_loss_context_manager():
                loss = self.compute_loss(model, inputs)
            return loss.detach(), None, None
        if self.stage_loss is None:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        inputs = self.prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.stage_loss(self.loss_context, model, inputs)
        return loss.detach(), None, None

    def chunked_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The causal-LM loss from the final hidden states, without full-vocabulary logits (HeadLoss)."""
        trained = inputs["loss_targets"].numel()
        denominator = num_items_in_batch if num_items_in_batch is not None else max(trained, 1)
        scale = self.token_average_scale(num_items_in_batch) / denominator
        stats = self.special_meter is not None and model.training
        loss, targets, ce, correct = self.head_loss(model, inputs, scale, want_stats=stats)
        if stats:
            self.special_meter.update_positions(targets, ce, correct)
        return (loss, None) if return_outputs else loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = self.loss_of(model, inputs, return_outputs, num_items_in_batch)
        if model.training:
            self.guard.watch(out[0] if return_outputs else out, self.state.global_step + 1)
        return out

    def loss_of(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if "position_ids" in inputs:
            inputs["use_cache"] = False  # with a KV cache transformers would not build the packed (block) mask
        if self.stage_loss is not None:
            loss = self.stage_loss(self.loss_context, model, inputs)
            return (loss, None) if return_outputs else loss
        if self.head_loss is not None and "loss_index" in inputs:
            return self.chunked_loss(model, inputs, return_outputs, num_items_in_batch)
        if not self.loss_variant.plain:
            return self.variant_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.token_weights is None and self.special_meter is None:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        labels = inputs["labels"]
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if self.special_meter is not None and model.training:
            self.special_meter.update(outputs.logits.detach(), labels)
        if self.token_weights is None:
            return (loss, outputs) if return_outputs else loss
        denominator = num_items_in_batch
        if num_items_in_batch is None:
            denominator = (shift_labels(labels) != IGNORE_INDEX).sum()
        # the same factor super() applied to the standard term (token averaging across processes)
        scale = self.token_average_scale(num_items_in_batch)
        loss = loss + scale * token_weight_correction(outputs.logits, labels, self.token_weights, denominator)
        return (loss, outputs) if return_outputs else loss

    def variant_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """A loss variant (label smoothing, dft, eaft, asft) from the full logits, normalised as the standard loss;
        asft's KL term reads the reference's logits of the same batch."""
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        ref_logits = None
        if self.loss_variant.kind == "asft":
            ref_logits = self.loss_context.reference.run(model, lambda reference: reference(**inputs).logits)
        if self.special_meter is not None and model.training:
            self.special_meter.update(outputs.logits.detach(), labels)
        denominator = num_items_in_batch
        if num_items_in_batch is None:
            denominator = (shift_labels(labels) != IGNORE_INDEX).sum()
        loss = self.token_average_scale(num_items_in_batch) * variant_causal_loss(
            outputs.logits, labels, self.loss_variant, denominator, self.token_weights, ref_logits)
        return (loss, outputs) if return_outputs else loss
