"""What trains when: one mechanism for whole tensors and for rows of embedding matrices.

Everything that will ever train is in the optimizer from step 0. While closed:
- a whole tensor's gradient is dropped after accumulation (grad=None), so clipping ignores it and the
  optimizer skips it: no weight decay, no Adam state, no movement;
- a row gate zeroes those rows' gradient after accumulation and, after every optimizer step, writes the
  saved rows back, so weight decay and Adam momentum (built from other rows' history) cannot move them.
A gate opens at its step; `TensorGate.open_at` / `RowGate.until` are optimizer-step counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

logger = logging.getLogger(__name__)


@dataclass
class RowGate:
    """Rows ``ids`` of each matrix in ``params`` stay bit-identical for the first ``until`` optimizer steps."""

    params: list[torch.nn.Parameter]
    ids: list[int]
    until: int
    label: str = "token"
    on_open: str | None = None  # log line when the gate opens
    saved: list[torch.Tensor] = field(default_factory=list)
    hooks: list = field(default_factory=list)

    def close(self) -> None:
        index = torch.tensor(self.ids, dtype=torch.long)
        self.saved = [p.detach()[index.to(p.device)].clone() for p in self.params]
        for p in self.params:
            if p.requires_grad:  # an optimizer may have frozen the whole matrix (BAdam): restoring is enough
                self.hooks.append(p.register_post_accumulate_grad_hook(_zero_rows(index.to(p.device))))

    def restore(self) -> None:
        with torch.no_grad():
            for p, rows in zip(self.params, self.saved):
                p[torch.tensor(self.ids, device=p.device)] = rows

    def open(self) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks.clear()
        self.saved = []


def _zero_rows(index: torch.Tensor):
    def hook(param: torch.Tensor) -> None:
        if param.grad is not None:
            param.grad.index_fill_(0, index, 0.0)

    return hook


@dataclass
class TensorGate:
    """Whole tensors that train only from optimizer step ``open_at`` on."""

    params: list[torch.nn.Parameter]
    open_at: int
    label: str
    hooks: list = field(default_factory=list)

    def close(self) -> None:
        for p in self.params:
            self.hooks.append(p.register_post_accumulate_grad_hook(_drop_grad))

    def open(self) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks.clear()


def _drop_grad(param: torch.Tensor) -> None:
    param.grad = None


class Gates:
    """Drives row and tensor gates from Trainer callback events (see callbacks/gates.py)."""

    def __init__(self, rows: list[RowGate] | None = None, tensors: list[TensorGate] | None = None) -> None:
        self.rows = rows or []
        self.tensors = tensors or []

    def merged(self, other: Gates) -> Gates:
        return Gates(rows=self.rows + other.rows, tensors=self.tensors + other.tensors)

    def __bool__(self) -> bool:
        return bool(self.rows or self.tensors)

    def begin(self, step: int) -> None:
        """Close every gate that is still shut at ``step`` (also when resuming mid-schedule)."""
        for gate in self.rows:
            if step < gate.until:
                gate.close()
        for gate in self.tensors:
            if step < gate.open_at:
                gate.close()

    def after_optimizer_step(self, step: int) -> None:
        """``step`` is the index of the step just taken (0-based)."""
        for gate in self.rows:
            if gate.saved and step < gate.until:
                gate.restore()

    def before_step(self, step: int) -> None:
        """Open gates whose time has come; ``step`` is the 0-based index of the step about to run."""
        for gate in self.rows:
            if gate.saved and step >= gate.until:
                gate.open()
                if gate.on_open:
                    logger.info(gate.on_open, step)
        for gate in self.tensors:
            if gate.hooks and step >= gate.open_at:
                gate.open()
                logger.info("Unfroze %s at step %d", gate.label, step)
