"""GaLore and APOLLO (`use_galore`, `use_apollo`): the target linear weights keep low-rank optimizer state, every
other weight full AdamW state; layer-wise mode steps each weight inside backward, after the gates."""

from __future__ import annotations

import torch

from tunesmith.train.gates import Gates, RowGate
from tunesmith.train.optimizers import build_optimizer, build_scheduler
from tunesmith.train.optimizers.layerwise import LayerwiseOptimizer

from .optimizer_helpers import arguments, backward, changed, finetuning, snapshot, tiny


def test_galore_state_is_low_rank(qwen2_model, tmp_path):
    model = tiny(qwen2_model)
    optimizer = build_optimizer(model, arguments(tmp_path), finetuning(use_galore=True, galore_rank=8))
    backward(model)
    optimizer.step()
    params = dict(model.named_parameters())
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight",
                 "model.layers.0.self_attn.k_proj.weight"):
        state, shape = optimizer.state[params[name]], params[name].shape
        assert min(state["exp_avg"].shape) == 8 and state["exp_avg"].numel() == 8 * max(shape), name
        assert state["exp_avg_sq"].shape == state["exp_avg"].shape
    # not targets: the embedding (not a linear layer), norms and biases keep full AdamW state
    for name in ("model.embed_tokens.weight", "model.norm.weight", "model.layers.0.self_attn.q_proj.bias"):
        assert optimizer.state[params[name]]["exp_avg"].shape == params[name].shape, name
    projected = [g for g in optimizer.param_groups if "rank" in g]
    assert len(projected) == 1 and projected[0]["update_proj_gap"] == 200 and projected[0]["scale"] == 2.0
    assert {id(p) for p in projected[0]["params"]} == {id(p) for n, p in params.items() if
                                                       p.ndim == 2 and "layers." in n}


def test_galore_target_names_select_modules(qwen2_model, tmp_path):
    model = tiny(qwen2_model)
    optimizer = build_optimizer(model, arguments(tmp_path), finetuning(use_galore=True, galore_target=("q_proj",)))
    names = {id(p): n for n, p in model.named_parameters()}
    projected = next(g for g in optimizer.param_groups if "rank" in g)["params"]
    assert sorted(names[id(p)] for p in projected) == [f"model.layers.{i}.self_attn.q_proj.weight" for i in range(4)]


def test_apollo_state_shape(qwen2_model, tmp_path):
    model = tiny(qwen2_model)
    ft = finetuning(use_apollo=True, apollo_rank=4, apollo_scale_type="tensor", apollo_proj="svd")
    optimizer = build_optimizer(model, arguments(tmp_path), ft)
    group = next(g for g in optimizer.param_groups if "rank" in g)
    assert (group["rank"], group["scale"], group["scale_type"], group["proj"]) == (4, 32.0, "tensor", "svd")
    backward(model)
    optimizer.step()
    params = dict(model.named_parameters())
    for name in ("model.layers.0.mlp.up_proj.weight", "model.layers.2.self_attn.v_proj.weight"):
        assert min(optimizer.state[params[name]]["exp_avg"].shape) == 4, name
    assert optimizer.state[params["model.embed_tokens.weight"]]["exp_avg"].shape == (512, 64)


def test_layerwise_steps_inside_backward_on_its_schedule(qwen2_model, tmp_path):
    model = tiny(qwen2_model)
    args = arguments(tmp_path, lr_scheduler_type="linear", warmup_steps=1)
    optimizer = build_optimizer(model, args, finetuning(use_galore=True, galore_rank=8, galore_layerwise=True))
    assert isinstance(optimizer, LayerwiseOptimizer)
    scheduler = build_scheduler(optimizer, args, num_training_steps=4)
    optimizer.attach()
    before = snapshot(model)
    backward(model)  # step 0 of the warm-up: learning rate 0, nothing moves, and no gradient is kept
    assert not changed(model, before) and all(p.grad is None for p in model.parameters())
    inner = optimizer.optimizers[model.model.embed_tokens.weight]
    assert inner.param_groups[0]["lr"] == 1e-3  # each weight's schedule advanced: warm-up over
    scheduler.step()
    assert scheduler.get_last_lr() == [1e-3]  # what Trainer logs: the weights' learning rate
    backward(model, seed=1)  # step 1 at learning rate 1e-3: every weight moved inside backward
    assert changed(model, before) == set(before)
    assert all(p.grad is None for p in model.parameters())
    assert inner.param_groups[0]["lr"] == 1e-3 * 2 / 3  # linear decay after warm-up: step 2 of 4
    state = optimizer.state_dict()  # a checkpoint holds every weight's state and schedule
    fresh = build_optimizer(model, args, finetuning(use_galore=True, galore_rank=8, galore_layerwise=True))
    build_scheduler(fresh, args, num_training_steps=4)
    fresh.load_state_dict(state)
    assert fresh.optimizers[model.model.embed_tokens.weight].param_groups[0]["lr"] == 1e-3 * 2 / 3
    optimizer.detach()


def test_layerwise_steps_after_the_row_gate(qwen2_model, tmp_path):
    """The gate's hook zeroes the gated rows' gradient before the weight's layer-wise step: the rows stay
    bit-identical and their Adam state stays zero (no history from other rows' gradients)."""
    model = tiny(qwen2_model)
    embedding = model.model.embed_tokens.weight
    optimizer = build_optimizer(model, arguments(tmp_path, weight_decay=0.1),
                                finetuning(use_galore=True, galore_rank=8, galore_layerwise=True))
    gated = [3, 7, 11]
    gates = Gates(rows=[RowGate([embedding], gated, until=100)])
    gates.begin(0)  # as on_train_begin: the gate callback runs before the one attaching the layer-wise hooks
    optimizer.attach()
    rows = embedding.detach()[gated].clone()
    for step in range(3):
        backward(model, seed=step)
        gates.after_optimizer_step(step)
        assert torch.equal(embedding.detach()[gated], rows)
    state = optimizer.optimizers[embedding].state[embedding]
    assert torch.count_nonzero(state["exp_avg"][gated]) == 0
    assert torch.count_nonzero(state["exp_avg"]) > 0
    optimizer.detach()
