"""Several optimizers over disjoint parameters, driven as one (Trainer, accelerate and the learning-rate
scheduler see a single optimizer whose param_groups are the inner optimizers' own group dicts, so the schedule
reaches every one)."""

from __future__ import annotations

import torch


class ChainedOptimizer(torch.optim.Optimizer):
    def __init__(self, optimizers: list[torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers
        params = [p for o in optimizers for g in o.param_groups for p in g["params"]]
        super().__init__(params, {"lr": optimizers[0].param_groups[0]["lr"]})
        self.param_groups = [group for o in optimizers for group in o.param_groups]

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for optimizer in self.optimizers:
            optimizer.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"state": {}, "param_groups": [], "chained": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state_dict: dict) -> None:
        for optimizer, state in zip(self.optimizers, state_dict["chained"], strict=True):
            optimizer.load_state_dict(state)
        # loading gives the inner optimizers new group dicts: share those, or the schedule would no longer reach them
        self.param_groups = [group for o in self.optimizers for group in o.param_groups]
