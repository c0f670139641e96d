"""Special-token monitoring: loss and accuracy on special-token targets vs ordinary targets during
training, and per-token precision / recall / F1 of predicting them at evaluation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..types import IGNORE_INDEX
from .losses import shift_labels


class SpecialTokenMeter:
    """Sums over the micro-batches between two logging steps, kept on the batch's device (read only when a
    logging step collects them, so training never waits on them)."""

    def __init__(self, special_ids: list[int]) -> None:
        self.special_ids = torch.tensor(sorted(set(special_ids)), dtype=torch.long)
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(5, dtype=torch.float64)  # special loss, special n, special correct, ordinary loss, n

    @torch.no_grad()
    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        targets = shift_labels(labels)
        trained = targets != IGNORE_INDEX
        picked_logits, picked = logits[trained].float(), targets[trained]
        ce = F.cross_entropy(picked_logits, picked, reduction="none")
        self.update_positions(picked, ce, picked_logits.argmax(-1) == picked)

    @torch.no_grad()
    def update_positions(self, targets: torch.Tensor, ce: torch.Tensor, correct: torch.Tensor) -> None:
        """targets, per-position cross-entropy and argmax hits of the trained positions, each (N,)."""
        if self.special_ids.device != targets.device:
            self.special_ids = self.special_ids.to(targets.device)
        if self.sums.device != targets.device:
            self.sums = self.sums.to(targets.device)
        special = torch.isin(targets, self.special_ids).double()
        ordinary = 1.0 - special
        ce, correct = ce.double(), correct.double()
        self.sums += torch.stack([(ce * special).sum(), special.sum(), (correct * special).sum(),
                                  (ce * ordinary).sum(), ordinary.sum()])

    def collect(self, reduce=None) -> dict[str, float]:
        sums = (reduce(self.sums) if reduce is not None else self.sums).cpu()
        self.reset()
        out = {}
        if sums[1] > 0:
            out["special_loss"] = round(float(sums[0] / sums[1]), 4)
            out["special_acc"] = round(float(sums[2] / sums[1]), 4)
        if sums[4] > 0:
            out["ordinary_loss"] = round(float(sums[3] / sums[4]), 4)
        return out


def argmax_logits(logits, labels):
    """preprocess_logits_for_metrics: keep only the predicted ids (no full logits kept for evaluation)."""
    if isinstance(logits, tuple):
        logits = logits[0]
    return logits.argmax(-1)


def special_token_f1(predictions, label_ids, special: dict[str, int]) -> dict[str, float]:
    """Per special token: precision, recall and F1 of predicting it at trained positions; micro-averaged.

    predictions: (N, T) argmax ids where position t predicts label t+1; label_ids: (N, T) unshifted.
    """
    preds = torch.as_tensor(predictions)[:, :-1]
    targets = torch.as_tensor(label_ids)[:, 1:]
    trained = targets != IGNORE_INDEX
    out: dict[str, float] = {}
    tp_all = fp_all = fn_all = 0
    for token, tid in special.items():
        hit_pred, hit_true = (preds == tid) & trained, (targets == tid) & trained
        tp = int((hit_pred & hit_true).sum())
        fp, fn = int(hit_pred.sum()) - tp, int(hit_true.sum()) - tp
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
        if tp + fn > 0 or fp > 0:
            out[f"f1_{token}"] = _f1(tp, fp, fn)
    precision = tp_all / (tp_all + fp_all) if tp_all + fp_all else 0.0
    recall = tp_all / (tp_all + fn_all) if tp_all + fn_all else 0.0
    out.update(special_precision=round(precision, 4), special_recall=round(recall, 4),
               special_f1=_f1(tp_all, fp_all, fn_all))
    return out


def token_accuracy(predictions, label_ids) -> float:
    """LLaMA-Factory's `compute_accuracy`: per example (row), the share of trained positions whose argmax
    prediction is the next token; the mean of those shares over the examples that have a trained position.

    predictions: (N, T) argmax ids where position t predicts label t+1; label_ids: (N, T) unshifted, -100
    where not trained (and where Trainer padded the evaluation batches to one width)."""
    preds = torch.as_tensor(predictions)[:, :-1]
    targets = torch.as_tensor(label_ids)[:, 1:]
    trained = targets != IGNORE_INDEX
    counts = trained.sum(-1)
    hits = ((preds == targets) & trained).sum(-1)
    rows = counts > 0
    if not bool(rows.any()):
        return 0.0
    return round(float((hits[rows].double() / counts[rows].double()).mean()), 4)


def _f1(tp: int, fp: int, fn: int) -> float:
    return round(2 * tp / (2 * tp + fp + fn), 4) if tp else 0.0
