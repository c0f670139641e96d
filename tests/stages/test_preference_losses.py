"""Preference losses against values computed by hand (closed forms on small tensors)."""

from __future__ import annotations

import math

import pytest
import torch

from tunesmith.stages.preference.losses import (dpo_loss, kto_loss, orpo_loss, pairwise_reward_loss, reply_nll,
                                                sequence_logps, simpo_loss, token_logps)
from tunesmith.types import IGNORE_INDEX

T = torch.tensor


def softplus(x: float) -> float:  # -log sigmoid(-x)
    return math.log1p(math.exp(x))


# chosen log-ratio pc - rc = +0.5, rejected log-ratio pr - rr = -0.5: DPO logits = 1.0
PC, PR, RC, RR = T([-1.0]), T([-2.0]), T([-1.5]), T([-1.5])


def test_sigmoid_dpo_closed_form():
    losses, chosen, rejected = dpo_loss("sigmoid", PC, PR, RC, RR, beta=0.1)
    assert losses.item() == pytest.approx(softplus(-0.1), abs=1e-6)  # -log σ(0.1 · 1.0) = 0.644397
    assert chosen.item() == pytest.approx(0.05) and rejected.item() == pytest.approx(-0.05)


def test_sigmoid_dpo_is_log2_with_zero_rewards_when_policy_equals_reference():
    logps = T([-3.2, -7.1, -0.4])
    losses, chosen, rejected = dpo_loss("sigmoid", logps, logps + 1, logps, logps + 1, beta=0.1)
    assert torch.allclose(losses, torch.full((3,), math.log(2)))
    assert torch.equal(chosen, torch.zeros(3)) and torch.equal(rejected, torch.zeros(3))


def test_label_smoothing_mixes_both_directions():
    losses, _, _ = dpo_loss("sigmoid", PC, PR, RC, RR, beta=0.1, label_smoothing=0.2)
    assert losses.item() == pytest.approx(0.8 * softplus(-0.1) + 0.2 * softplus(0.1), abs=1e-6)


def test_hinge_and_ipo():
    assert dpo_loss("hinge", PC, PR, RC, RR, beta=0.1)[0].item() == pytest.approx(0.9)  # relu(1 - 0.1)
    assert dpo_loss("hinge", PC, PR, RC, RR, beta=2.0)[0].item() == 0.0  # relu(1 - 2)
    assert dpo_loss("ipo", PC, PR, RC, RR, beta=0.1)[0].item() == pytest.approx(16.0)  # (1 - 1/0.2)^2


def test_kto_pair_uses_the_other_half_as_kl_baseline():
    pc, pr, rc, rr = T([-1.0, -2.0]), T([-3.0, -3.0]), T([-1.5, -2.5]), T([-2.0, -4.0])
    # chosen ratios 0.5, 0.5 (mean 0.5); rejected ratios -1.0, 1.0 (mean 0.0 -> clamped 0.0)
    losses, _, _ = dpo_loss("kto_pair", pc, pr, rc, rr, beta=1.0)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = [1 - sig(0.5 - 0.0), 1 - sig(0.5 - 0.0), 1 - sig(0.5 + 1.0), 1 - sig(0.5 - 1.0)]
    assert losses.tolist() == pytest.approx(expected, abs=1e-6)


def test_orpo_closed_form():
    pc, pr = T([math.log(0.5)]), T([math.log(0.25)])
    # log odds(c) - log odds(r) = log(1) - log(1/3) = log 3; -log σ(log 3) = log(4/3)
    losses, chosen, _, ratio = orpo_loss(pc, pr, beta=0.1)
    assert ratio.item() == pytest.approx(math.log(4 / 3), abs=1e-6)
    assert losses.item() == pytest.approx(math.log(2) + 0.1 * math.log(4 / 3), abs=1e-6)
    assert chosen.item() == pytest.approx(0.1 * math.log(0.5))


def test_simpo_closed_form():
    losses, _, _ = simpo_loss(T([-1.0]), T([-1.5]), beta=2.0, gamma=0.5)
    assert losses.item() == pytest.approx(softplus(-(2.0 * 0.5 - 0.5)), abs=1e-6)  # -log σ(0.5)


def test_kto_closed_form():
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    pc, pr, rc, rr = T([-1.0]), T([-4.0, -2.0]), T([-2.0]), T([-3.0, -3.0])
    p_kl, r_kl = T([-5.0, -5.0]), T([-5.3, -5.1])  # z0 = mean(0.3, 0.1) = 0.2
    losses, chosen, rejected, z0 = kto_loss(pc, pr, p_kl, rc, rr, r_kl, beta=0.5, desirable_weight=2.0,
                                            undesirable_weight=0.5)
    assert z0.item() == pytest.approx(0.2)
    expected = [2.0 * (1 - sig(0.5 * (1.0 - 0.2))), 0.5 * (1 - sig(0.5 * (0.2 + 1.0))),
                0.5 * (1 - sig(0.5 * (0.2 - 1.0)))]
    assert losses.tolist() == pytest.approx(expected, abs=1e-6)
    assert chosen.tolist() == pytest.approx([0.5]) and rejected.tolist() == pytest.approx([-0.5, 0.5])


def test_kto_baseline_is_clamped_at_zero():
    _, _, _, z0 = kto_loss(T([-1.0]), T([-1.0]), T([-6.0]), T([-1.0]), T([-1.0]), T([-5.0]), beta=0.1)
    assert z0.item() == 0.0


def test_pairwise_reward_loss():
    assert pairwise_reward_loss(T([2.0]), T([1.0])).item() == pytest.approx(softplus(-1.0), abs=1e-6)


def _logits_and_labels():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = T([[IGNORE_INDEX, IGNORE_INDEX, 3, 4, 1], [IGNORE_INDEX, 2, 6, IGNORE_INDEX, IGNORE_INDEX]])
    return logits, labels


def test_token_logps_equal_log_softmax_of_the_next_token():
    logits, labels = _logits_and_labels()
    logps, mask = token_logps(logits, labels)
    full = torch.log_softmax(logits, -1)
    assert mask.tolist() == [[False, True, True, True], [True, True, False, False]]
    assert logps[0, 1].item() == pytest.approx(full[0, 1, 3].item(), abs=1e-6)  # position 1 predicts labels[2]
    assert logps[1, 0].item() == pytest.approx(full[1, 0, 2].item(), abs=1e-6)
    assert logps[1, 2].item() == 0.0  # untrained positions contribute nothing
    total, lengths = sequence_logps(logits, labels)
    assert lengths.tolist() == [3, 2]
    assert total[0].item() == pytest.approx(sum(full[0, t, labels[0, t + 1]].item() for t in (1, 2, 3)), abs=1e-5)


def test_ld_alpha_downweights_tokens_beyond_the_shorter_reply():
    logits, labels = _logits_and_labels()
    logps, _ = token_logps(logits, labels)
    total, _ = sequence_logps(logits, labels, ld_alpha=0.25, pair_lengths=T([2, 2]))
    # row 0: reply tokens at positions 1, 2, 3; the third is beyond the pair length 2
    assert total[0].item() == pytest.approx((logps[0, 1] + logps[0, 2] + 0.25 * logps[0, 3]).item(), abs=1e-6)
    assert total[1].item() == pytest.approx(logps[1].sum().item(), abs=1e-6)


def test_reply_nll_is_the_mean_and_honours_token_weights():
    logits, labels = _logits_and_labels()
    logps, mask = token_logps(logits, labels)
    nll = reply_nll(logits, labels)
    assert nll.tolist() == pytest.approx((-logps.sum(-1) / mask.sum(-1)).tolist(), abs=1e-6)
    weights = torch.ones(7)
    weights[4] = 3.0  # row 0's token 4 (position 2) counts three times
    weighted = reply_nll(logits, labels, weights)
    assert weighted[0].item() == pytest.approx(-(logps[0, 1] + 3 * logps[0, 2] + logps[0, 3]).item() / 3, abs=1e-6)
    assert weighted[1].item() == pytest.approx(nll[1].item(), abs=1e-6)
