"""GRPO math against hand computations (TRL's GRPOTrainer semantics)."""

import math

import pytest
import torch

from tunesmith.stages.rl.grpo_math import (GRPOHyper, aggregate, clipped_token_loss, group_advantages, grpo_loss,
                                           nanstd, per_token_kl, weighted_rewards)

REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])


def test_group_scaling_divides_by_each_groups_unbiased_std():
    adv, zero = group_advantages(REWARDS, 4, "group")
    std = math.sqrt(4 * 0.25 / 3)  # group 1: mean 0.5, deviations +-0.5, n - 1 = 3
    expected = [0.5 / (std + 1e-4), -0.5 / (std + 1e-4), -0.5 / (std + 1e-4), 0.5 / (std + 1e-4), 0, 0, 0, 0]
    torch.testing.assert_close(adv, torch.tensor(expected))
    assert zero.tolist() == [False] * 4 + [True] * 4


def test_batch_scaling_divides_by_the_batch_std_and_none_only_centres():
    adv, _ = group_advantages(REWARDS, 4, "batch")
    std = math.sqrt(5.5 / 7)  # mean 1.25; squared deviations 0.0625, 1.5625, 1.5625, 0.0625, 4 x 0.5625
    torch.testing.assert_close(adv[:4], torch.tensor([0.5, -0.5, -0.5, 0.5]) / (std + 1e-4))
    assert adv[4:].abs().max() == 0
    adv, _ = group_advantages(REWARDS, 4, "none")
    torch.testing.assert_close(adv, torch.tensor([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0]))


def test_unscored_completions_leave_the_baseline_and_get_no_advantage():
    per_func = torch.tensor([[1.0, float("nan")], [float("nan"), float("nan")], [0.0, 1.0], [0.0, 0.0]])
    totals = weighted_rewards(per_func, torch.tensor([1.0, 2.0]))
    assert totals[0] == 1.0 and math.isnan(totals[1]) and totals[2] == 2.0 and totals[3] == 0.0
    adv, _ = group_advantages(totals, 4, "none")
    torch.testing.assert_close(adv, torch.tensor([0.0, 0.0, 1.0, -1.0]))  # mean of 1, 2, 0 is 1
    torch.testing.assert_close(nanstd(totals), torch.tensor(1.0))


def test_clipping_with_asymmetric_bounds():
    # four one-token completions: ratios 1.5, 0.5, 0.9, 1.5 with advantages +1, -1, +1, -1
    logps = torch.tensor([[1.5], [0.5], [0.9], [1.5]]).log()
    loss, low, high = clipped_token_loss(logps, torch.zeros(4, 1), torch.tensor([1.0, -1.0, 1.0, -1.0]), 0.2, 0.28)
    # -min(rA, clip(r, 0.8, 1.28)A): 1.5 -> 1.28 (cut above), 0.5 -> 0.8 (cut below), 0.9 and 1.5 x -1 unclipped
    torch.testing.assert_close(loss.squeeze(1), torch.tensor([-1.28, 0.8, -0.9, 1.5]))
    assert low.squeeze(1).tolist() == [0, 1, 0, 0] and high.squeeze(1).tolist() == [1, 0, 0, 0]


def test_loss_aggregations():
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert aggregate(per_token, mask, "grpo", 5) == pytest.approx((6 / 3 + 4 / 1) / 2)
    assert aggregate(per_token, mask, "bnpo", 5) == pytest.approx(10 / 4)
    assert aggregate(per_token, mask, "dr_grpo", 5) == pytest.approx(10 / (2 * 5))
    assert aggregate(per_token, mask, "dapo", 5, window_tokens=8) == pytest.approx(10 / 8)


def test_k3_kl_and_its_place_in_the_loss():
    assert per_token_kl(torch.tensor(-1.0), torch.tensor(-2.0)).item() == pytest.approx(math.exp(-1))
    logps = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    ref = torch.tensor([[-2.0, -2.0]])
    hyper = GRPOHyper(num_generations=2, loss_type="bnpo", beta=0.5)
    loss, metrics = grpo_loss(logps, logps.detach(), ref, torch.tensor([2.0]), torch.ones(1, 2), hyper)
    # ratio 1 on both tokens: -A each, plus beta * kl (kl = e^-1 on the first token, 0 on the second)
    assert loss.item() == pytest.approx((-2 - 2 + 0.5 * math.exp(-1)) / 2)
    assert metrics["kl"].item() == pytest.approx(math.exp(-1) / 2)
    loss.backward()
    # d/dlogp of -A exp(logp - old) = -A; of beta (e^(ref - logp) - (ref - logp) - 1) = beta (1 - e^(ref - logp))
    torch.testing.assert_close(logps.grad, torch.tensor([[(-2 + 0.5 * (1 - math.exp(-1))) / 2, -2 / 2]]))
