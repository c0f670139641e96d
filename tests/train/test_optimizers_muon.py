"""Muon (`use_muon`): torch.optim.Muon for the 2-D hidden weights, AdamW for embeddings, the head and 1-D
weights; one optimizer to Trainer, the schedule reaching both."""

from __future__ import annotations

import torch

from tunesmith.train.optimizers import build_optimizer
from tunesmith.train.optimizers.chained import ChainedOptimizer

from .optimizer_helpers import arguments, backward, finetuning, tiny


def test_muon_splits_hidden_matrices_from_the_rest(qwen2_untied_model, tmp_path):
    model = tiny(qwen2_untied_model)
    optimizer = build_optimizer(model, arguments(tmp_path, weight_decay=0.0), finetuning(use_muon=True))
    assert isinstance(optimizer, ChainedOptimizer)
    muon, adamw = optimizer.optimizers
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    names = {id(p): n for n, p in model.named_parameters()}
    in_muon = {names[id(p)] for g in muon.param_groups for p in g["params"]}
    in_adamw = {names[id(p)] for g in adamw.param_groups for p in g["params"]}
    assert "model.layers.0.self_attn.q_proj.weight" in in_muon and "model.layers.3.mlp.down_proj.weight" in in_muon
    assert {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
            "model.layers.0.self_attn.q_proj.bias"} <= in_adamw
    assert not in_muon & in_adamw and len(in_muon | in_adamw) == len(names)
    assert muon.param_groups[0]["adjust_lr_fn"] == "match_rms_adamw"  # LLaMA-Factory's 0.2 * sqrt(max(A, B))
    backward(model)
    optimizer.step()
    weight = model.model.layers[0].mlp.up_proj.weight  # 128 x 64
    assert "momentum_buffer" in muon.state[weight]
    assert "exp_avg" in adamw.state[model.model.embed_tokens.weight]
    fresh = build_optimizer(model, arguments(tmp_path, weight_decay=0.0), finetuning(use_muon=True))
    optimizer.zero_grad()
    weight.grad = torch.randn(weight.shape, generator=torch.Generator().manual_seed(0))  # full rank
    before = weight.detach().clone()
    fresh.step()
    # an orthogonalised update O of a full-rank gradient (64 singular values near 1, so RMS(O) ~ 1/sqrt(128)) scaled by LLaMA-Factory's
    # 0.2 * sqrt(max(128, 64)) * lr: its RMS is about 0.2 * lr (Newton-Schulz leaves singular values in about
    # [0.7, 1.15]); Keller's original scaling, sqrt(128 / 64) * lr, would give about 0.11 * lr
    rms = ((weight.detach() - before).pow(2).mean().sqrt() / 1e-3).item()
    assert 0.15 < rms < 0.3


def test_muon_schedule_reaches_both_optimizers(qwen2_model, tmp_path):
    from transformers import get_scheduler

    model = tiny(qwen2_model)
    optimizer = build_optimizer(model, arguments(tmp_path), finetuning(use_muon=True))
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=0, num_training_steps=4)
    backward(model)
    optimizer.step()
    scheduler.step()
    assert [g["lr"] for o in optimizer.optimizers for g in o.param_groups] == [1e-3 * 3 / 4] * 2
    state = optimizer.state_dict()
    fresh = build_optimizer(model, arguments(tmp_path), finetuning(use_muon=True))
    fresh.load_state_dict(state)
    resumed = get_scheduler("linear", fresh, num_warmup_steps=0, num_training_steps=4)
    resumed.load_state_dict(scheduler.state_dict())
    resumed.step()  # the resumed schedule reaches both inner optimizers
    assert [g["lr"] for o in fresh.optimizers for g in o.param_groups] == [1e-3 * 2 / 4] * 2
    weight = model.model.layers[1].self_attn.o_proj.weight
    assert torch.equal(fresh.optimizers[0].state[weight]["momentum_buffer"],
                       optimizer.optimizers[0].state[weight]["momentum_buffer"])
