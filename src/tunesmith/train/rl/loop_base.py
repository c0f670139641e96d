"""What the rollout loops (ppo, grpo) share, on accelerate instead of Trainer: the accelerator, the prompt
loader, the optimizer and scheduler as Trainer builds them, TrainerState and the callbacks, the run (each
batch of prompts gives one or more optimizer steps, logged and checkpointed like Trainer's), and saving the
policy. A loop subclass implements ``step(items)``, yielding one stats dict per optimizer step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path

import torch

from ...config.errors import ConfigError
from ...model.compat import is_peft_model
from ...templates.stops import stop_token_ids
from ..callbacks.checkpoint_marker import mark_complete
from ..setup import create_optimizer, create_scheduler

logger = logging.getLogger(__name__)


class UpdateMetrics:
    """The loop's side of stages.base.MetricSink: the loss terms of each minibatch, averaged per step."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def record(self, **values) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)

    def observe_tokens(self, logits, labels) -> None:
        pass  # no special-token metrics on generated replies

    def collect(self) -> dict[str, float]:
        out = {key: value / max(self.count, 1) for key, value in self.sums.items()}
        self.sums, self.count = {}, 0
        return out


class RolloutLoop:
    """``items`` are the per-prompt records; ``batch_items`` of them per process form one rollout batch, which
    gives ``steps_per_batch`` optimizer steps (max_steps and the schedule count optimizer steps)."""

    name = "rollout"
    logged: tuple[str, ...] = ("loss",)

    def __init__(self, cfg, args, model, tokenizer, template, items: list, batch_items: int, steps_per_batch: int,
                 callbacks: list | None = None, what: str = "") -> None:
        from accelerate import Accelerator
        from transformers import TrainerControl, TrainerState

        self.cfg, self.args, self.tokenizer = cfg, args, tokenizer
        mixed = "bf16" if args.bf16 else "fp16" if args.fp16 else "no"
        # use_cpu: set for processes torchrun starts on a machine without CUDA (setup.training_arguments)
        self.accelerator = Accelerator(mixed_precision=mixed, cpu=args.use_cpu)
        self.batch_size, self.accumulation = args.per_device_train_batch_size, args.gradient_accumulation_steps
        world = self.accelerator.num_processes
        if len(items) < batch_items * world:
            raise ConfigError(f"stage {self.name}: {len(items)} prompts are fewer than one step needs "
                              f"({batch_items * world} = {what} x processes)")
        if args.gradient_checkpointing:  # recompute activations in the updates; generation keeps its cache
            self.policy_of(model).gradient_checkpointing_enable(
                gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs or {"use_reentrant": False})
        generator = torch.Generator().manual_seed(args.seed)
        loader = torch.utils.data.DataLoader(items, batch_size=batch_items, drop_last=True,
                                             shuffle=not cfg.data.disable_shuffling, generator=generator,
                                             collate_fn=list)
        self.rng = torch.Generator().manual_seed(args.seed)
        optimizer = create_optimizer(model, args, cfg.finetuning)
        self.model, self.optimizer, self.loader = self.accelerator.prepare(model, optimizer, loader)
        self.steps_per_batch = steps_per_batch
        self.steps_per_epoch = len(self.loader) * steps_per_batch
        self.max_steps = args.max_steps if args.max_steps > 0 else \
            math.ceil(args.num_train_epochs * self.steps_per_epoch)
        self.scheduler = create_scheduler(self.optimizer, args, self.max_steps)
        self.stop_ids = stop_token_ids(tokenizer, template)
        self.pad_id = tokenizer.pad_token_id
        self.state = TrainerState(max_steps=self.max_steps, logging_steps=args.logging_steps)
        self.state.is_world_process_zero = self.accelerator.is_main_process
        self.control = TrainerControl()
        self.callbacks = callbacks or []
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]

    @staticmethod
    def policy_of(model):
        """The causal LM inside what the optimizer sees (PPO wraps it with a value head)."""
        return model

    @property
    def unwrapped(self):
        return self.accelerator.unwrap_model(self.model)

    def optimizer_step(self) -> None:
        if self.args.max_grad_norm and self.args.max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(self.trainable, self.args.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad()

    def step(self, items: list) -> Iterator[dict[str, float]]:
        raise NotImplementedError

    def on_log(self, logs: dict) -> None:
        """Called on the main process after each logged step (the stats of the last step are in ``logs``)."""

    def describe(self) -> str:
        return ""

    # -- the run ----------------------------------------------------------------------------------------
    def _batches(self):
        while True:
            yield from self.loader

    def train(self) -> list[dict]:
        from tqdm.auto import tqdm

        args, acc = self.args, self.accelerator
        logger.info("%s: %d steps, %s", self.name, self.max_steps, self.describe())
        self._callbacks("on_train_begin")
        window: list[dict] = []
        history: list[dict] = []
        save_every = self._save_every()
        bar = tqdm(total=self.max_steps, desc=self.name, disable=args.disable_tqdm or not acc.is_local_main_process)
        for items in self._batches():
            if self.state.global_step >= self.max_steps:
                break
            for stats in self.step(items):
                window.append(stats)
                history.append(stats)
                self.state.global_step += 1
                self.state.epoch = self.state.global_step / self.steps_per_epoch
                bar.update(1)
                bar.set_postfix(reward=f"{stats['reward']:.3f}")
                last = self.state.global_step == self.max_steps
                if self.state.global_step % max(int(args.logging_steps), 1) == 0 or last:
                    logs = {key: sum(s[key] for s in window) / len(window) for key in self.logged
                            if all(key in s for s in window)}
                    logs["learning_rate"] = self.scheduler.get_last_lr()[0]
                    self.state.log_history.append({**logs, "step": self.state.global_step})
                    self._callbacks("on_log", logs=logs)
                    if acc.is_main_process:
                        self.on_log(stats)
                    window = []
                if save_every and self.state.global_step % save_every == 0 and not last:
                    self.save_checkpoint()
                if last:
                    break
        bar.close()
        self._callbacks("on_train_end")
        return history

    def _callbacks(self, event: str, **kwargs) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(self.args, self.state, self.control, **kwargs)

    def _save_every(self) -> int:
        if self.args.save_strategy != "steps" or not self.args.save_steps:
            return 0
        steps = self.args.save_steps
        return int(steps) if steps >= 1 else max(1, math.ceil(self.max_steps * steps))

    # -- saving -----------------------------------------------------------------------------------------
    def save_extra(self, out: Path) -> None:
        """What a loop saves besides the policy and the tokenizer (main process)."""

    def save(self, output_dir: str | Path) -> None:
        """The policy as usual (full model or its own peft adapter), the tokenizer, and ``save_extra``."""
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            out = Path(output_dir)
            out.mkdir(parents=True, exist_ok=True)
            policy = self.policy_of(self.unwrapped)
            if is_peft_model(policy):
                policy.save_pretrained(str(out), selected_adapters=["default"])
            else:
                policy.save_pretrained(str(out))
            self.tokenizer.save_pretrained(str(out))
            self.save_extra(out)
        self.accelerator.wait_for_everyone()

    def save_checkpoint(self) -> None:
        """checkpoint-N with everything ``save`` writes, marked complete once it is all there."""
        folder = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
        self.save(folder)
        if self.accelerator.is_main_process:
            mark_complete(folder, self.state.global_step)
