"""Layer-wise steps (LLaMA-Factory's galore_layerwise / apollo_layerwise): every trainable weight has its own
optimizer and learning-rate schedule, stepped inside backward as soon as the weight's gradient is complete, which
is then dropped, so the whole model's gradients never exist at once.

What this means for the rest of the run:
- the hooks are attached at the start of training, after the gates closed theirs: a closed gate zeroes or drops
  the gradient first, so a gated row or tensor is never stepped from its gradient (rows are written back after
  every step as always);
- gradients cannot accumulate (config rule), and `max_grad_norm` cannot clip: the norm of the whole model's
  gradient is never known before a weight is stepped (refused when set, said once otherwise);
- the loss is still watched for non-finite values and the weights are checked before every save;
- Trainer's optimizer and scheduler are stand-ins: the learning rate it logs is the weights' schedule, and a
  checkpoint holds every weight's optimizer and schedule state."""

from __future__ import annotations

import logging

import torch
from torch.optim.lr_scheduler import LRScheduler
from transformers import TrainerCallback

logger = logging.getLogger(__name__)


class LayerwiseOptimizer(torch.optim.Optimizer):
    """Trainer's optimizer in layer-wise mode: step and zero_grad do nothing (the hooks step the weights)."""

    def __init__(self, optimizers: dict[torch.nn.Parameter, torch.optim.Optimizer], lr: float) -> None:
        self.optimizers = optimizers
        self.schedulers: dict[torch.nn.Parameter, LRScheduler] = {}
        self.hooks: list = []
        super().__init__([torch.zeros(1)], {"lr": lr})

    def zero_grad(self, set_to_none: bool = True) -> None:
        pass

    def step(self, closure=None):
        return None

    def attach(self) -> None:
        """One hook per weight, after every hook already registered (the gates'): step, drop the gradient,
        advance the weight's schedule."""
        if self.hooks:
            return
        for param, optimizer in self.optimizers.items():
            self.hooks.append(param.register_post_accumulate_grad_hook(self._stepper(optimizer)))

    def _stepper(self, optimizer: torch.optim.Optimizer):
        def hook(param: torch.Tensor) -> None:
            if param.grad is not None:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            scheduler = self.schedulers.get(param)
            if scheduler is not None:
                scheduler.step()

        return hook

    def detach(self) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks.clear()

    def state_dict(self) -> dict:
        return {"state": {}, "param_groups": [], "layerwise": [o.state_dict() for o in self.optimizers.values()],
                "schedulers": [s.state_dict() for s in self.schedulers.values()]}

    def load_state_dict(self, state_dict: dict) -> None:
        for optimizer, state in zip(self.optimizers.values(), state_dict["layerwise"], strict=True):
            optimizer.load_state_dict(state)
        for scheduler, state in zip(self.schedulers.values(), state_dict.get("schedulers", []), strict=False):
            scheduler.load_state_dict(state)


class LayerwiseScheduler(LRScheduler):
    """Trainer's scheduler in layer-wise mode: builds one schedule per weight (`lr_scheduler_type` and its
    warm-up, as Trainer would) and reports their learning rate."""

    def __init__(self, optimizer: LayerwiseOptimizer, args, num_training_steps: int) -> None:
        from transformers import get_scheduler

        for param, inner in optimizer.optimizers.items():
            optimizer.schedulers[param] = get_scheduler(
                args.lr_scheduler_type, inner, num_warmup_steps=args.get_warmup_steps(num_training_steps),
                num_training_steps=num_training_steps, scheduler_specific_kwargs=args.lr_scheduler_kwargs or {})
        self.inner = next(iter(optimizer.schedulers.values()))
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [self.inner.get_last_lr()[0]]

    def state_dict(self) -> dict:
        return {}  # the weights' schedules are saved with the optimizer's state

    def load_state_dict(self, state_dict: dict) -> None:
        pass


class AttachLayerwise(TrainerCallback):
    """Attaches the layer-wise hooks when training begins, after the gate callback closed the gates."""

    def __init__(self, optimizer_ref) -> None:
        self.optimizer_ref = optimizer_ref  # () -> LayerwiseOptimizer or None (built later by Trainer)

    def on_train_begin(self, args, state, control, **kwargs):
        optimizer = self.optimizer_ref()
        if isinstance(optimizer, LayerwiseOptimizer):
            optimizer.attach()

    def on_train_end(self, args, state, control, **kwargs):
        optimizer = self.optimizer_ref()
        if isinstance(optimizer, LayerwiseOptimizer):
            optimizer.detach()


def layerwise(param_groups: list[dict], cls: type, kwargs: dict, lr: float, name: str,
              max_grad_norm: float) -> LayerwiseOptimizer:
    """One ``cls`` optimizer per parameter, each with its group's settings."""
    optimizers = {}
    for group in param_groups:
        settings = {k: v for k, v in group.items() if k != "params"}
        for param in group["params"]:
            optimizers[param] = cls([{"params": [param], **settings}], **kwargs)
    if max_grad_norm and max_grad_norm > 0:
        logger.warning("layer-wise %s: gradient clipping does not apply (each weight steps before the gradient norm "
                       "of the model is known); the logged grad_norm is 0", name)
    logger.info("layer-wise %s: %d weights step inside backward", name, len(optimizers))
    return LayerwiseOptimizer(optimizers, lr)
