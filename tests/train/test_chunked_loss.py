"""The chunked linear cross-entropy equals the standard one: loss, gradients, statistics; and the wiring
through a real model (HeadLoss) equals transformers' own causal-LM loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tunesmith.train.chunked_loss import auto_chunk_size, chunked_linear_cross_entropy
from tunesmith.train.head_loss import HeadLoss, chunked_loss_blocker


def reference(hidden, weight, bias, targets, weights, scale):
    logits = hidden @ weight.t() + (bias if bias is not None else 0)
    return (F.cross_entropy(logits.double(), targets, reduction="none") * weights).sum() * scale


@pytest.mark.parametrize("chunk", [1, 7, 64, 0])
@pytest.mark.parametrize("with_bias", [False, True])
def test_loss_and_gradients_match_the_standard_loss(chunk, with_bias):
    torch.manual_seed(0)
    n, h, v = 50, 12, 37
    hidden = torch.randn(n, h, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(v, h, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(v, dtype=torch.float64, requires_grad=True) if with_bias else None
    targets = torch.randint(0, v, (n,))
    weights = torch.rand(n, dtype=torch.float64) * 2
    loss, _, _ = chunked_linear_cross_entropy(hidden, weight, targets, 1 / 40, weights, bias, chunk_size=chunk)
    (loss * 3.0).backward()  # a non-unit incoming gradient (gradient accumulation scaling)
    got = [p.grad.clone() for p in (hidden, weight, bias) if p is not None]
    for p in (hidden, weight, bias):
        if p is not None:
            p.grad = None
    expected = reference(hidden, weight, bias, targets, weights, 1 / 40)
    (expected * 3.0).backward()
    assert loss.dtype == torch.float32
    assert abs(loss.item() - expected.item()) < 1e-5 * max(1.0, abs(expected.item()))
    for g, p in zip(got, [p for p in (hidden, weight, bias) if p is not None]):
        torch.testing.assert_close(g, p.grad, rtol=1e-5, atol=1e-6)


def test_unit_weights_are_exactly_the_mean_cross_entropy():
    torch.manual_seed(1)
    hidden, weight = torch.randn(20, 8), torch.randn(30, 8)
    targets = torch.randint(0, 30, (20,))
    loss, ce, correct = chunked_linear_cross_entropy(hidden, weight, targets, 1 / 20, chunk_size=6, want_stats=True)
    logits = hidden @ weight.t()
    torch.testing.assert_close(loss, F.cross_entropy(logits, targets), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ce, F.cross_entropy(logits, targets, reduction="none"), rtol=1e-5, atol=1e-5)
    assert torch.equal(correct, logits.argmax(-1) == targets)


def test_bf16_compute_matches_an_autocast_head():
    torch.manual_seed(2)
    hidden = torch.randn(64, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    targets = torch.randint(0, 50, (64,))
    loss, _, _ = chunked_linear_cross_entropy(hidden, weight, targets, 1 / 64, chunk_size=16,
                                              compute_dtype=torch.bfloat16)
    loss.backward()
    grad_w = weight.grad.clone()
    weight.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = F.linear(hidden, weight)
    F.cross_entropy(logits.float(), targets).backward()
    assert abs(loss.item() - F.cross_entropy(logits.float(), targets).item()) < 1e-3
    assert weight.grad.dtype == grad_w.dtype == torch.float32
    torch.testing.assert_close(grad_w, weight.grad, rtol=2e-2, atol=2e-3)


def test_no_gradients_are_formed_without_grad_mode_and_empty_input_works():
    hidden, weight = torch.randn(5, 4, requires_grad=True), torch.randn(9, 4, requires_grad=True)
    with torch.no_grad():
        loss, _, _ = chunked_linear_cross_entropy(hidden, weight, torch.arange(5), 0.2)
    assert not loss.requires_grad
    empty, _, _ = chunked_linear_cross_entropy(hidden[:0], weight, torch.arange(0), 1.0)
    empty.backward()
    assert empty.item() == 0.0 and torch.count_nonzero(weight.grad) == 0


def test_automatic_chunks_bound_the_logits_memory():
    assert auto_chunk_size(151936) == 2048  # 2048 x 151936 float32 logits: 1.2 GiB per chunk
    assert auto_chunk_size(2048) == 8192
    assert auto_chunk_size(10**9) == 128


def test_head_loss_through_a_model_equals_transformers_loss(qwen2_model):
    from transformers import AutoModelForCausalLM

    from tunesmith.data.collate import Collator

    model = AutoModelForCausalLM.from_pretrained(qwen2_model, dtype=torch.float32)
    assert chunked_loss_blocker(model) is None
    items = [{"input_ids": [5, 6, 7, 8, 9], "labels": [-100, -100, 7, 8, 9]},
             {"input_ids": [11, 12, 13], "labels": [-100, 12, 13]}]
    batch = Collator(0, loss_index=True)(items)
    expected = model(**{k: batch[k] for k in ("input_ids", "attention_mask", "labels")}).loss
    expected.backward()
    head_grad = model.lm_head.weight.grad.clone()
    model.zero_grad()
    head = HeadLoss(model, chunk_size=2)
    loss, targets, ce, correct = head(model, dict(batch), scale=1 / 5, want_stats=True)
    loss.backward()
    assert targets.tolist() == [7, 8, 9, 12, 13]
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.lm_head.weight.grad, head_grad, rtol=1e-4, atol=1e-6)
    head.remove()
    assert model(**{k: batch[k] for k in ("input_ids", "attention_mask")}).logits.shape[1] == 8  # hook gone


def test_models_that_transform_logits_keep_the_standard_loss(qwen2_model):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(qwen2_model)
    model.config.final_logit_softcapping = 30.0
    assert "final_logit_softcapping" in chunked_loss_blocker(model)
    model.config.final_logit_softcapping = None
    model.lm_head = torch.nn.Sequential(model.lm_head)
    assert "Sequential" in chunked_loss_blocker(model)


def test_compiled_chunk_math_equals_eager():
    torch.manual_seed(3)
    hidden = torch.randn(70, 16, requires_grad=True)
    weight = torch.randn(300, 16, requires_grad=True)
    targets = torch.randint(0, 300, (70,))
    weights = torch.rand(70)
    out = {}
    for compiled in (False, True):
        hidden.grad = weight.grad = None
        loss, ce, correct = chunked_linear_cross_entropy(hidden, weight, targets, 1 / 70, weights, chunk_size=32,
                                                         want_stats=True, compiled=compiled)
        loss.backward()
        out[compiled] = (loss.detach(), ce, correct, hidden.grad.clone(), weight.grad.clone())
    for a, b in zip(out[False], out[True]):
        if a.dtype == torch.bool:
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
