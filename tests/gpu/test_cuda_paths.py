"""The CUDA-only speed paths against their CPU-tested references (skipped without a GPU): PyTorch's varlen
flash kernel vs one SDPA call per sequence, the bf16 chunked loss vs an autocast head, and a bf16 training
run whose automatic attention is a varlen kernel and whose loss matches SDPA's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tunesmith.model import attention
from tunesmith.model.attention import register_varlen, varlen_causal
from tunesmith.train.callbacks.log_file import read_log
from tunesmith.train.chunked_loss import chunked_linear_cross_entropy
from tunesmith.train.run import run_training
from tunesmith.utils.versions import torch_varlen_attn

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(torch_varlen_attn() is None, reason="this torch has no torch.nn.attention.varlen")
def test_torch_varlen_kernel_equals_per_sequence_sdpa_forward_and_backward():
    register_varlen()
    assert attention._kernel is not None
    torch.manual_seed(0)
    lengths = [5, 130, 1, 77, 300]
    cu = torch.tensor([0] + torch.tensor(lengths).cumsum(0).tolist(), dtype=torch.int32, device="cuda")
    n = sum(lengths)
    q, k, v = (torch.randn(n, h, 64, device="cuda", dtype=torch.bfloat16).requires_grad_() for h in (14, 2, 2))
    probe = torch.randn(n, 14, 64, device="cuda")
    got = varlen_causal(q, k, v, cu, max(lengths), 64 ** -0.5)
    (got.float() * probe).sum().backward()
    ref_inputs = [x.detach().cpu().float().requires_grad_() for x in (q, k, v)]
    ref = varlen_causal(*ref_inputs, cu.cpu(), 0, 64 ** -0.5)  # float32 on the CPU: one SDPA call per sequence
    (ref * probe.cpu()).sum().backward()
    torch.testing.assert_close(got.float().cpu(), ref.detach(), rtol=2e-2, atol=2e-2)
    for x, r in zip((q, k, v), ref_inputs):
        torch.testing.assert_close(x.grad.float().cpu(), r.grad, rtol=5e-2, atol=5e-2)


def test_bf16_chunked_loss_on_cuda_matches_an_autocast_head():
    torch.manual_seed(1)
    hidden = torch.randn(3000, 256, device="cuda", requires_grad=True)
    weight = (torch.randn(32000, 256, device="cuda") * 0.02).requires_grad_()
    targets = torch.randint(0, 32000, (3000,), device="cuda")
    loss, _, _ = chunked_linear_cross_entropy(hidden, weight, targets, 1 / 3000, compute_dtype=torch.bfloat16)
    loss.backward()
    grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = F.linear(hidden, weight)
    ref = F.cross_entropy(logits.float(), targets)
    ref.backward()
    assert abs(loss.item() - ref.item()) < 1e-3
    torch.testing.assert_close(grads[0], hidden.grad, rtol=3e-2, atol=1e-5)
    torch.testing.assert_close(grads[1], weight.grad, rtol=3e-2, atol=1e-5)


def test_bf16_training_with_automatic_attention_matches_sdpa(qwen2_model, train_config, tmp_path, caplog):
    losses = {}
    for attn in ("auto", "sdpa"):
        cfg = train_config(qwen2_model, output_dir=str(tmp_path / attn), flash_attn=attn, bf16=True, max_steps=8,
                           learning_rate=1e-3, dataloader_num_workers=0, compile_layers=False)
        with caplog.at_level("INFO", logger="tunesmith"):
            out = run_training(cfg).output_dir
        losses[attn] = [r["loss"] for r in read_log(out) if "loss" in r]
    assert "attention: tunesmith_varlen" in caplog.text or "attention: flash_attention_2" in caplog.text
    assert losses["auto"][-1] < losses["auto"][0]
    assert max(abs(a - b) for a, b in zip(losses["auto"], losses["sdpa"])) < 0.05


def test_compiled_layers_train_like_eager_ones(qwen2_model, train_config, tmp_path):
    losses = {}
    for compiled in (True, False):
        cfg = train_config(qwen2_model, output_dir=str(tmp_path / str(compiled)), compile_layers=compiled,
                           bf16=True, max_steps=6, learning_rate=1e-3, dataloader_num_workers=0)
        out = run_training(cfg).output_dir
        losses[compiled] = [r["loss"] for r in read_log(out) if "loss" in r]
    assert max(abs(a - b) for a, b in zip(losses[True], losses[False])) < 0.05
