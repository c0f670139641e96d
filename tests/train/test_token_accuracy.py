"""compute_accuracy's metric against hand-computed values (LLaMA-Factory's definition: per example, then the mean)."""

from __future__ import annotations

import pytest
import torch

from tunesmith.train.token_metrics import token_accuracy

I = -100


def test_accuracy_is_the_mean_of_per_example_accuracies():
    # position t predicts label t+1; row 0: targets 5,6,7 -> predictions 5,9,7: 2/3; row 1: target 4 -> 4: 1/1
    preds = torch.tensor([[5, 9, 7, 0], [1, 4, 0, 0]])
    labels = torch.tensor([[I, 5, 6, 7], [I, I, 4, I]])
    assert token_accuracy(preds, labels) == pytest.approx(round((2 / 3 + 1) / 2, 4))


def test_rows_without_trained_tokens_and_padding_are_ignored():
    preds = torch.tensor([[3, 3, 3], [8, 8, 8]])
    labels = torch.tensor([[I, 3, I], [I, I, I]])  # the second row: evaluation padding only
    assert token_accuracy(preds, labels) == 1.0
    assert token_accuracy(preds, torch.full((2, 3), I)) == 0.0
