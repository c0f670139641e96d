"""GRPOLoss on a tiny model: shared-prompt rows and one row per completion give the same loss and gradients,
and the first-pass loss (ratio 1) is the hand formula."""

import pytest
import torch

from tunesmith.stages.base import LossContext
from tunesmith.stages.grpo import GRPOLoss, completion_logps
from tunesmith.stages.rl.batch import RolloutBatch
from tunesmith.stages.rl.grpo_math import GRPOHyper
from tunesmith.train.rl.grpo_loop import shared_layout

from .test_shared_prompt import Sink, separate_logps, tiny_lm

P1, P2 = [5, 6, 7, 8], [11, 12, 13]
PROMPTS = [P1, P1, P1, P2, P2]  # one group of 3 and a partial group of 2 (a micro-batch may cut a group)
COMPLETIONS = [[20, 21, 22], [30], [40, 41, 42, 43], [50, 51], [60, 61, 62]]
ADVANTAGES = torch.tensor([1.0, -0.5, -0.5, 2.0, -2.0])


def batches():
    width = max(len(c) for c in COMPLETIONS)
    common = {"width": width, "advantages": ADVANTAGES, "loss_mask": torch.ones(5), "window_tokens": 13.0}
    return ({**common, "rollout": RolloutBatch.build(PROMPTS, COMPLETIONS, 0)},
            {**common, "shared": shared_layout(PROMPTS, COMPLETIONS, 0)})


def test_groups_share_one_row_each():
    shared = batches()[1]["shared"]
    assert shared["input_ids"].shape[0] == 2
    assert shared["reply_rows"].tolist() == [0, 0, 0, 1, 1]


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "bnpo", "dr_grpo"])
def test_shared_rows_equal_separate_rows(loss_type):
    model = tiny_lm()
    loss_fn = GRPOLoss(GRPOHyper(num_generations=3, loss_type=loss_type, max_completion_length=6))
    out = []
    for batch in batches():
        model.zero_grad()
        loss = loss_fn(LossContext(Sink()), model, batch)
        loss.backward()
        out.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    torch.testing.assert_close(out[0][0], out[1][0], atol=1e-6, rtol=1e-5)
    for name in out[0][1]:
        torch.testing.assert_close(out[0][1][name], out[1][1][name], atol=1e-6, rtol=1e-4, msg=name)


def test_first_pass_loss_and_gradient_are_the_hand_formula():
    """Ratio 1 (old log-probs = the policy's own): dapo loss = -Σ_i A_i n_i / T, gradient -Σ_i A_i ∇ log π(o_i) / T."""
    model = tiny_lm()
    loss = GRPOLoss(GRPOHyper(num_generations=3, loss_type="dapo"))(LossContext(Sink()), model, batches()[1])
    lengths = torch.tensor([len(c) for c in COMPLETIONS], dtype=torch.float32)
    assert loss.item() == pytest.approx(float(-(ADVANTAGES * lengths).sum() / 13.0), abs=1e-6)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    surrogate = -sum(a * separate_logps(model, p, c).sum() for a, p, c in zip(ADVANTAGES, PROMPTS, COMPLETIONS)) / 13
    surrogate.backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(grads[name], param.grad, atol=1e-6, rtol=1e-4, msg=name)


def test_completion_logps_masks_padding():
    model = tiny_lm()
    with torch.no_grad():
        for batch in batches():
            logps, mask = completion_logps(model, batch)
            assert mask.sum(-1).tolist() == [3, 1, 4, 2, 3]
            assert logps[1, 1:].abs().max() == 0
