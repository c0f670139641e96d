"""The one transformers.Trainer subclass. Stages change only the loss; data order options live here."""

from __future__ import annotations

import torch
from torch.utils.data import SequentialSampler
from transformers import Trainer
from transformers.trainer_pt_utils import BatchRebalanceSampler

from ..data.sampler import PhasedSampler, TokenBudgetBatches
from ..types import IGNORE_INDEX
from .losses import shift_labels, token_weight_correction
from .stage_metrics import StageMetrics


class TokenBudgetBatchSampler(TokenBudgetBatches, BatchRebalanceSampler):
    """TokenBudgetBatches in the form transformers' Trainer takes a rank-aware batch sampler: it becomes the
    DataLoader's batch_sampler and accelerate's per-process sharding is switched off for it."""


class TunesmithTrainer(Trainer):
    def __init__(self, *args, stage=None, phase_sizes: list[int] | None = None, shuffle: bool = True,
                 token_weights=None, special_meter=None, stage_loss=None, reference=None, head_loss=None,
                 train_batches: TokenBudgetBatchSampler | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stage = stage
        self.phase_sizes = phase_sizes
        self.shuffle = shuffle
        self.token_weights = token_weights  # (V,) loss weight per target token id, or None
        self.special_meter = special_meter  # SpecialTokenMeter or None
        self.stage_loss = stage_loss  # a stage's own loss (preference stages), or None for the causal-LM loss
        self.reference = reference  # the reference model of dpo/kto, or None
        self.head_loss = head_loss  # train.head_loss.HeadLoss (the chunked causal-LM loss), or None
        self.train_batches = train_batches  # token-budget batches, or None for per_device_train_batch_size
        self.metrics = StageMetrics()
        if stage_loss is not None:
            self.loss_is_scaled_for_ga = False  # a stage loss is a micro-batch mean: Trainer divides by GA steps

    def record(self, **values) -> None:
        """Stage metrics of one micro-batch (tensors of per-example values), averaged at the next log."""
        self.metrics.add("train" if self.model.training else "eval", values)

    def observe_tokens(self, logits, labels) -> None:
        if self.special_meter is not None and self.model.training and labels.numel():
            self.special_meter.update(logits.detach(), labels)

    def _reduce(self, tensor):
        return self.accelerator.reduce(tensor.to(self.accelerator.device), reduction="sum").cpu()

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.train_batches is not None:
            return self.train_batches
        if self.phase_sizes:
            return PhasedSampler(self.phase_sizes, seed=self.args.data_seed or self.args.seed, shuffle=self.shuffle)
        if not self.shuffle:
            return SequentialSampler(dataset)
        return super()._get_train_sampler(train_dataset)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """A trainable-tokens adapter holds complete rows, so the (resized) base embeddings that peft would
        add to it are not needed: save only the adapter, keeping it small."""
        from peft import PeftModel, TrainableTokensConfig

        model = self.model
        if not (isinstance(model, PeftModel) and isinstance(model.peft_config.get("default"), TrainableTokensConfig)):
            return super()._save(output_dir, state_dict)
        output_dir = output_dir or self.args.output_dir
        if self.args.should_save:
            model.save_pretrained(output_dir, save_embedding_layers=False)
            if self.processing_class is not None:
                self.processing_class.save_pretrained(output_dir)

    def log(self, logs: dict, *args, **kwargs) -> None:
        if "loss" in logs:
            if self.special_meter is not None:
                logs.update(self.special_meter.collect(reduce=self._reduce))
            logs.update(self.metrics.collect("train", reduce=self._reduce))
        super().log(logs, *args, **kwargs)

    def evaluation_loop(self, *args, **kwargs):
        self.metrics.collect("eval")  # drop anything left from an interrupted evaluation
        output = super().evaluation_loop(*args, **kwargs)
        prefix = kwargs.get("metric_key_prefix", args[4] if len(args) > 4 else "eval")
        output.metrics.update({f"{prefix}_{k}": v for k, v in self.metrics.collect("eval", self._reduce).items()})
        return output

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        if self.head_loss is not None and "loss_index" in inputs:
            if not prediction_loss_only:  # metrics need the logits: the standard forward
                inputs = {k: v for k, v in inputs.items() if k not in self.head_loss.KEYS}
                return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
            inputs = self._prepare_inputs(inputs)
            with torch.no_grad(), self.compute_loss_context_manager():
                loss = self.compute_loss(model, inputs)
            return loss.detach(), None, None
        if self.stage_loss is None:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.stage_loss(self, model, inputs)
        return loss.detach(), None, None

    def token_average_scale(self, num_items_in_batch) -> int:
        """The factor transformers applies to a loss normalised by the token count of all processes, so that
        the gradient mean over processes is the per-token mean (1 on a single process)."""
        if num_items_in_batch is None or not (self.args.average_tokens_across_devices
                                              and self.model_accepts_loss_kwargs):
            return 1
        return self.accelerator.num_processes // self.get_tp_size() if self.args.n_gpu <= 1 else self.args.n_gpu

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
        if "position_ids" in inputs:
            inputs["use_cache"] = False  # with a KV cache transformers would not build the packed (block) mask
        if self.stage_loss is not None:
            return self.stage_loss(self, model, inputs, return_outputs, num_items_in_batch)
        if self.head_loss is not None and "loss_index" in inputs:
            return self.chunked_loss(model, inputs, return_outputs, num_items_in_batch)
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
