"""PPO math against hand computations: GAE, whitening, the clipped policy and value losses, per-token
rewards, the adaptive KL controller and running score statistics."""

from __future__ import annotations

import math

import pytest
import torch

from tunesmith.stages.rl.losses import (AdaptiveKLController, RunningMoments, gae, masked_mean, masked_whiten,
                                        policy_loss, token_rewards, value_loss)


def close(x: torch.Tensor, expected) -> None:
    assert torch.allclose(x, torch.tensor(expected, dtype=x.dtype), atol=1e-6), x


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_gae_matches_the_recursion_by_hand():
    # gamma=1, lam=0.5; rewards [1, 0, 2], values [0.5, 1, 1.5]
    # t2: d = 2 - 1.5 = 0.5; A2 = 0.5.  t1: d = 0 + 1.5 - 1 = 0.5; A1 = 0.5 + 0.5 * 0.5 = 0.75
    # t0: d = 1 + 1 - 0.5 = 1.5; A0 = 1.5 + 0.5 * 0.75 = 1.875
    adv, ret = gae(t([1, 0, 2]), t([0.5, 1.0, 1.5]), t([1, 1, 1]), gamma=1.0, lam=0.5)
    close(adv, [[1.875, 0.75, 0.5]])
    close(ret, [[2.375, 1.75, 2.0]])


def test_gae_discounts_and_ignores_everything_after_the_reply():
    # gamma=0.9, lam=1, reply of 2 tokens; the padded third entry holds garbage that must not leak in
    # t1: d = 2 + 0 - 1 = 1; A1 = 1.  t0: d = 1 + 0.9 * 1 - 1 = 0.9; A0 = 0.9 + 0.9 * 1 = 1.8
    adv, ret = gae(t([1, 2, 9]), t([1, 1, 9]), t([1, 1, 0]), gamma=0.9, lam=1.0)
    close(adv, [[1.8, 1.0, 0.0]])
    close(ret, [[2.8, 2.0, 0.0]])


def test_gae_with_lambda_one_and_gamma_one_is_return_minus_value():
    rewards, values, mask = t([0.1, -0.2, 0.3, 1.0]), t([0.4, 0.3, 0.2, 0.1]), t([1, 1, 1, 1])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    to_go = torch.flip(torch.cumsum(torch.flip(rewards, [1]), 1), [1])
    close(adv, (to_go - values).tolist())
    close(ret, to_go.tolist())


def test_masked_whiten_uses_only_real_tokens():
    x, mask = t([1, 2, 3, 100]), t([1, 1, 1, 0])  # mean 2, unbiased variance 1
    close(masked_whiten(x, mask), [[-1, 0, 1, 0]])
    close(masked_whiten(x, mask, shift_mean=False), [[1, 2, 3, 0]])
    assert masked_mean(x, mask).item() == pytest.approx(2.0)


def test_clipped_policy_loss_and_clip_fraction_by_hand():
    # ratios [1, 1.5, 0.5, (masked)], advantages [1, 1, -1, 5], eps 0.2
    # token 0: max(-1, -1) = -1, not clipped; token 1: max(-1.5, -1.2) = -1.2, clipped;
    # token 2: max(0.5, 0.8) = 0.8, clipped  -> loss (-1 - 1.2 + 0.8) / 3, clip fraction 2/3
    logp = t([0.0, math.log(1.5), math.log(0.5), 3.0])
    loss, clipfrac = policy_loss(logp, torch.zeros_like(logp), t([1, 1, -1, 5]), t([1, 1, 1, 0]), 0.2)
    assert loss.item() == pytest.approx(-1.4 / 3, abs=1e-6)
    assert clipfrac.item() == pytest.approx(2 / 3)


def test_policy_loss_at_ratio_one_is_minus_mean_advantage_with_that_gradient():
    logp = t([-1.0, -2.0]).requires_grad_(True)
    adv = t([0.5, -1.5])
    loss, clipfrac = policy_loss(logp, logp.detach(), adv, t([1, 1]), 0.2)
    loss.backward()
    assert loss.item() == pytest.approx(0.5) and clipfrac.item() == 0.0
    close(logp.grad, [[-0.25, 0.75]])  # d/dlogp of -A * exp(logp - old) / n


def test_clipped_value_loss_and_clip_fraction_by_hand():
    # token 0: V=1.0 (within 0.9 +- 0.2): both terms 0.  token 1: V=2.0 clipped to 1.2: max(4, 1.44) = 4.
    # token 2: V=0.5 clipped to 0.8: max(0.25, 0.64) = 0.64, the clipped term wins -> 0.5 * 4.64 / 3, 1/3
    loss, clipfrac = value_loss(t([1.0, 2.0, 0.5, 7]), t([0.9, 1.0, 1.0, 0]), t([1.0, 0.0, 0.0, 0]),
                                t([1, 1, 1, 0]), 0.2)
    assert loss.item() == pytest.approx(0.5 * 4.64 / 3, abs=1e-6)
    assert clipfrac.item() == pytest.approx(1 / 3)


def test_token_rewards_put_the_score_on_the_last_reply_token():
    logp = t([-1.0, -2.0, -3.0], [-1.0, -5.0, -5.0])
    ref = t([-1.5, -2.0, -2.0], [-1.2, 0.0, 0.0])
    mask = t([1, 1, 1], [1, 0, 0])
    rewards, kl = token_rewards(torch.tensor([2.0, -1.0]), logp, ref, mask, kl_coef=0.1)
    # row 0: kl [0.5, 0, -1] -> [-0.05, 0, 0.1 + 2]; row 1: one token, kl 0.2 -> -0.02 - 1
    close(rewards, [[-0.05, 0.0, 2.1], [-1.02, 0.0, 0.0]])
    close(kl, [[0.5, 0.0, -1.0], [0.2, 0.0, 0.0]])


def test_adaptive_kl_controller_moves_towards_the_target():
    ctl = AdaptiveKLController(0.2, target=6.0, horizon=10000)
    assert ctl.update(12.0, 100) == pytest.approx(0.2 * (1 + 0.2 * 100 / 10000))  # error clipped at +0.2
    before = ctl.value
    assert ctl.update(6.0, 100) == pytest.approx(before)  # on target: unchanged
    assert ctl.update(3.0, 50) == pytest.approx(before * (1 - 0.2 * 50 / 10000))  # -0.5 clipped at -0.2
    assert ctl.update(5.4, 1000) == pytest.approx(before * 0.999 * (1 - 0.1 * 0.1))  # error -0.1


def test_running_moments_match_the_statistics_of_everything_seen():
    moments = RunningMoments()
    moments.update(torch.tensor([1.0, 2.0, 3.0]))
    normalised = moments.normalise(torch.tensor([5.0]))
    seen = torch.tensor([1.0, 2.0, 3.0, 5.0])
    assert moments.mean == pytest.approx(2.75) and moments.std == pytest.approx(seen.std().item())
    assert normalised.item() == pytest.approx((5.0 - 2.75) / seen.std().item(), rel=1e-6)
