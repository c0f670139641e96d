"""Loss variants of the causal-LM loss (DFT, EAFT, ASFT, label smoothing): closed forms checked by hand on a
2-token example, label smoothing equal to transformers' LabelSmoother, the chunked path equal to the standard one
(loss and gradients) with token weights composed, and the config rules and run plan that choose them."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tunesmith.config.errors import ConfigError
from tunesmith.config.load import build_config
from tunesmith.train.chunked_loss import chunked_linear_cross_entropy
from tunesmith.train.loss_variants import LossVariant, loss_variant
from tunesmith.train.losses import variant_causal_loss, variant_token_losses

LN2, LN3 = math.log(2.0), math.log(3.0)


def two_tokens():
    """Position 1: p = (1/4, 1/4, 1/2), target 2 (CE ln 2, p_y 1/2); position 2: uniform, target 0 (CE ln 3)."""
    logits = torch.tensor([[0.0, 0.0, LN2], [0.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    return logits, torch.tensor([2, 0])


def test_dft_is_cross_entropy_times_the_detached_label_probability():
    logits, targets = two_tokens()
    per_token = variant_token_losses(logits, targets, LossVariant("dft"))
    torch.testing.assert_close(per_token, torch.tensor([0.5 * LN2, LN3 / 3], dtype=torch.float64))
    per_token.sum().backward()
    # d/dx [CE · sg(p_y)] = p_y · (softmax - onehot)
    expected = torch.tensor([[0.5 * 0.25, 0.5 * 0.25, 0.5 * -0.5], [1 / 3 * -2 / 3, 1 / 9, 1 / 9]],
                            dtype=torch.float64)
    torch.testing.assert_close(logits.grad, expected)


def test_eaft_weights_cross_entropy_by_the_entropy_over_three_to_the_alpha():
    logits, targets = two_tokens()
    h1 = -(0.25 * math.log(0.25) * 2 + 0.5 * math.log(0.5))  # 1.5 ln 2; fewer than 20 tokens: the whole entropy
    for alpha in (1.0, 0.5):
        per_token = variant_token_losses(logits, targets, LossVariant("eaft", alpha=alpha))
        expected = [LN2 * (h1 / 3) ** alpha, LN3 * (LN3 / 3) ** alpha]
        torch.testing.assert_close(per_token, torch.tensor(expected, dtype=torch.float64))


def test_eaft_entropy_uses_the_top_20_logits_renormalised():
    logits = torch.cat([torch.zeros(20), torch.full((30,), -1e4)])[None]  # 20 equal logits, 30 negligible
    weight = variant_token_losses(logits, torch.tensor([0]), LossVariant("eaft", alpha=1.0)) / math.log(20)
    assert abs(weight.item() - math.log(20) / 3) < 1e-5
    spread = torch.zeros(1, 50)  # uniform over 50: top-20 renormalised is uniform over 20, not 50
    weight = variant_token_losses(spread, torch.tensor([0]), LossVariant("eaft", alpha=1.0)) / math.log(50)
    assert abs(weight.item() - math.log(20) / 3) < 1e-5


def test_asft_adds_alpha_times_kl_from_the_reference():
    logits, targets = two_tokens()
    ref = torch.zeros(2, 3, dtype=torch.float64)  # uniform reference q
    per_token = variant_token_losses(logits, targets, LossVariant("asft", alpha=0.1), ref)
    kl1 = sum(1 / 3 * math.log((1 / 3) / p) for p in (0.25, 0.25, 0.5))  # KL(q || p) at position 1; 0 at 2
    torch.testing.assert_close(per_token, torch.tensor([0.5 * LN2 + 0.1 * kl1, LN3 / 3], dtype=torch.float64))
    per_token.sum().backward()
    # d KL(q || p) / dx = p - q
    dft_grad = torch.tensor([[0.125, 0.125, -0.25], [-2 / 9, 1 / 9, 1 / 9]], dtype=torch.float64)
    kl_grad = torch.tensor([[0.25 - 1 / 3, 0.25 - 1 / 3, 0.5 - 1 / 3], [0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(logits.grad, dft_grad + 0.1 * kl_grad)


def test_label_smoothing_equals_transformers_label_smoother():
    from transformers.trainer_pt_utils import LabelSmoother

    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)
    labels = torch.tensor([[-100, 3, 4, 5, -100, -100], [-100, -100, 7, 8, 9, 1]])
    for eps in (0.1, 0.3):
        expected = LabelSmoother(epsilon=eps)({"logits": logits}, labels, shift_labels=True)
        got = variant_causal_loss(logits, labels, LossVariant("ce", smoothing=eps), denominator=7)
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
        with_count = LabelSmoother(epsilon=eps)({"logits": logits}, labels, shift_labels=True, num_items_in_batch=20)
        torch.testing.assert_close(variant_causal_loss(logits, labels, LossVariant("ce", smoothing=eps), 20),
                                   with_count, rtol=1e-6, atol=1e-6)
    plain = variant_causal_loss(logits, labels, LossVariant(), 7)
    torch.testing.assert_close(plain, F.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1)))


def test_token_weights_multiply_each_token_loss():
    logits, _ = two_tokens()
    logits = logits.detach()[None]  # (1, 2, V): position t predicts labels[t + 1]
    labels = torch.tensor([[-100, 2, 0]])
    logits = torch.cat([logits, torch.zeros(1, 1, 3, dtype=torch.float64)], dim=1)
    weights = torch.tensor([3.0, 1.0, 0.5], dtype=torch.float64)
    got = variant_causal_loss(logits, labels, LossVariant("dft"), denominator=2, token_weights=weights)
    assert abs(got.item() - (0.5 * 0.5 * LN2 + 3.0 * LN3 / 3) / 2) < 1e-9


VARIANTS = [LossVariant("ce", smoothing=0.1), LossVariant("dft"), LossVariant("eaft", alpha=1.0),
            LossVariant("eaft", alpha=0.5), LossVariant()]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"{v.kind}-{v.smoothing}-{v.alpha}")
@pytest.mark.parametrize("chunk", [7, 0])
def test_chunked_path_equals_the_standard_one_with_token_weights(variant, chunk):
    torch.manual_seed(4)
    n, h, v = 40, 12, 45
    hidden = torch.randn(n, h, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(v, h, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, v, (n,))
    position_weights = torch.rand(n, dtype=torch.float64) * 2
    loss, _, _ = chunked_linear_cross_entropy(hidden, weight, targets, 1 / 30, position_weights, chunk_size=chunk,
                                              variant=(variant.kind, variant.smoothing, variant.alpha))
    (loss * 2.0).backward()
    got = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    expected = (variant_token_losses(hidden @ weight.t(), targets, variant) * position_weights).sum() / 30
    (expected * 2.0).backward()
    assert abs(loss.item() - expected.item()) < 1e-5 * max(1.0, abs(expected.item()))
    torch.testing.assert_close(got[0], hidden.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(got[1], weight.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("variant", VARIANTS[:3], ids=lambda v: v.kind)
def test_head_loss_through_a_model_equals_the_standard_variant_loss(variant, qwen2_model):
    from transformers import AutoModelForCausalLM

    from tunesmith.data.collate import Collator
    from tunesmith.train.head_loss import HeadLoss

    model = AutoModelForCausalLM.from_pretrained(qwen2_model, dtype=torch.float32)
    items = [{"input_ids": [5, 6, 7, 8, 9], "labels": [-100, -100, 7, 8, 9]},
             {"input_ids": [11, 12, 13], "labels": [-100, 12, 13]}]
    batch = Collator(0, loss_index=True)(items)
    weights = torch.ones(model.config.vocab_size)
    weights[8], weights[13] = 2.5, 0.25
    logits = model(**{k: batch[k] for k in ("input_ids", "attention_mask")}).logits
    expected = variant_causal_loss(logits, batch["labels"], variant, 5, weights)
    expected.backward()
    head_grad = model.lm_head.weight.grad.clone()
    model.zero_grad()
    head = HeadLoss(model, chunk_size=2, token_weights=weights, variant=variant)
    loss, _, _, _ = head(model, dict(batch), scale=1 / 5)
    loss.backward()
    head.remove()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.lm_head.weight.grad, head_grad, rtol=1e-4, atol=1e-6)


BASE = {"model_name_or_path": "m", "stage": "sft", "do_train": True, "dataset": "a", "template": "qwen",
        "output_dir": "out"}


def config(**kw):
    return build_config({k: (v, "test.yaml") for k, v in {**BASE, **kw}.items()})


def test_config_names_the_variant():
    assert loss_variant(config()) == LossVariant()
    assert loss_variant(config(use_dft_loss=True)) == LossVariant("dft")
    assert loss_variant(config(use_eaft_loss=True)) == LossVariant("eaft", alpha=1.0)  # LLaMA-Factory's default
    assert loss_variant(config(use_asft_loss=True)) == LossVariant("asft", alpha=0.1)
    assert loss_variant(config(use_asft_loss=True, asft_alpha=0.05)).alpha == 0.05
    assert loss_variant(config(label_smoothing_factor=0.1)) == LossVariant("ce", smoothing=0.1)
    assert loss_variant(config(stage="pt", label_smoothing_factor=0.1)).smoothing == 0.1


@pytest.mark.parametrize("keys,message", [
    ({"use_dft_loss": True, "use_eaft_loss": True}, "are each a replacement of the sft loss; choose one"),
    ({"use_dft_loss": True, "stage": "pt"}, "replaces the loss of stage sft, not of stage pt"),
    ({"use_eaft_loss": True, "label_smoothing_factor": 0.1}, "does not combine with `use_eaft_loss`"),
    ({"label_smoothing_factor": 0.1, "stage": "dpo", "dataset": "p"}, "use `dpo_label_smoothing`"),
    ({"use_asft_loss": True, "precompute_ref_log_probs": True}, "does not apply to `use_asft_loss`"),
    ({"use_eaft_loss": True, "eaft_alpha": -1.0}, "`eaft_alpha` must be >= 0"),
])
def test_loss_variant_rules(keys, message):
    with pytest.raises(ConfigError) as err:
        config(**keys)
    assert message in str(err.value) and str(err.value).startswith("test.yaml")


def test_the_run_plan_shows_the_variant_and_its_path(qwen2_model):
    from tunesmith.stages.registry import get_stage
    from tunesmith.train.plan import make_plan

    def plan(**kw):
        cfg = config(model_name_or_path=str(qwen2_model), **kw)
        return make_plan(cfg, get_stage(cfg.stage))

    dft = plan(use_dft_loss=True, finetuning_type="full")
    assert dft.loss == "chunked" and dft.loss_variant.startswith("dft") and "dft" in dft.summary()
    assert plan(label_smoothing_factor=0.2).loss_variant == "cross-entropy, label smoothing 0.2"
    asft = plan(use_asft_loss=True, finetuning_type="full")
    assert asft.loss == "standard" and "reference" in asft.loss_reason
    assert asft.reference == "frozen copy of the starting model" and "asft (dft + 0.1" in asft.summary()
    assert plan(use_asft_loss=True).reference == "policy with adapters off"  # lora
    assert plan(use_asft_loss=True, ref_model=str(qwen2_model)).reference == f"ref_model {qwen2_model}"
    assert plan().loss_variant == "cross-entropy" and plan().reference is None


@pytest.mark.slow  # ~15 s of compilation on a CPU; the eager variant math is tested above
def test_compiled_chunk_math_equals_eager_for_the_variants():
    """The compiled chunk terms (on by default for packed half-precision CUDA training) compute the same."""
    torch.manual_seed(5)
    hidden = torch.randn(40, 16, requires_grad=True)
    weight = torch.randn(200, 16, requires_grad=True)
    targets = torch.randint(0, 200, (40,))
    for variant in (("dft", 0.0, 0.0), ("ce", 0.1, 0.0)):
        out = {}
        for compiled in (False, True):
            hidden.grad = weight.grad = None
            loss, _, _ = chunked_linear_cross_entropy(hidden, weight, targets, 1 / 40, chunk_size=16,
                                                      compiled=compiled, variant=variant)
            loss.backward()
            out[compiled] = (loss.detach(), hidden.grad.clone(), weight.grad.clone())
        for a, b in zip(out[False], out[True]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
