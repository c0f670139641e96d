"""BAdam (`use_badam`): one block of decoder layers trains at a time, switching every `badam_switch_interval`
optimizer steps; embeddings and head never train, so a gated row stays bit-identical."""

from __future__ import annotations

import torch

from tunesmith.train.optimizers import build_optimizer

from .optimizer_helpers import arguments, backward, changed, finetuning, snapshot, tiny


def test_badam_trains_only_the_active_block_and_switches(qwen2_model, tmp_path):
    model = tiny(qwen2_model)
    ft = finetuning(use_badam=True, badam_switch_interval=2, badam_switch_mode="ascending")
    optimizer = build_optimizer(model, arguments(tmp_path, learning_rate=1e-2, weight_decay=0.01), ft)
    moved_per_step = []
    for step in range(5):
        before = snapshot(model)
        backward(model, seed=step)
        optimizer.step()
        optimizer.zero_grad()
        moved_per_step.append(changed(model, before))
    blocks = [0, 0, 1, 1, 2]  # ascending from block 0, two steps each
    for step, (moved, block) in enumerate(zip(moved_per_step, blocks, strict=True)):
        expected = {n for n, _ in model.named_parameters() if n.startswith(f"model.layers.{block}.")}
        assert moved == expected, (step, sorted(moved)[:3])
    assert not model.model.embed_tokens.weight.requires_grad
    assert optimizer.base_optimizer.param_groups[0]["weight_decay"] == 0.01  # `weight_decay` reaches the block


def test_badam_checkpoint_continues_the_block_schedule(qwen2_model, tmp_path):
    """A checkpoint records the active block and the step count: the resumed optimizer trains the same block
    with its Adam state, and switches when the uninterrupted run would."""
    ft = finetuning(use_badam=True, badam_switch_interval=2)
    model = tiny(qwen2_model)
    optimizer = build_optimizer(model, arguments(tmp_path, learning_rate=1e-2), ft)
    for step in range(3):  # blocks 0, 0, 1
        backward(model, seed=step)
        optimizer.step()
        optimizer.zero_grad()
    state = optimizer.state_dict()
    assert state["active_block"] == 1
    resumed = tiny(qwen2_model)
    resumed.load_state_dict(model.state_dict())
    again = build_optimizer(resumed, arguments(tmp_path, learning_rate=1e-2), ft)
    again.load_state_dict(state)
    block_1 = {id(p) for g in again.base_optimizer.param_groups for p in g["params"]}
    assert {int(s["step"]) for s in again.base_optimizer.state.values()} == {1}  # block 1's Adam state is back
    assert {id(p) for p in again.base_optimizer.state} == block_1
    moved = []
    for step in range(3, 5):  # block 1 once more, then block 2
        before = snapshot(resumed)
        backward(resumed, seed=step)
        again.step()
        again.zero_grad()
        moved.append({n.split(".")[2] for n in changed(resumed, before)})
    assert moved == [{"1"}, {"2"}]


def test_badam_never_switching_keeps_its_block(qwen2_model, tmp_path):
    model = tiny(qwen2_model)
    ft = finetuning(use_badam=True, badam_switch_interval=-1, badam_start_block=3)
    optimizer = build_optimizer(model, arguments(tmp_path, learning_rate=1e-2), ft)
    before = snapshot(model)
    for step in range(3):
        backward(model, seed=step)
        optimizer.step()
        optimizer.zero_grad()
    assert changed(model, before) == {n for n, _ in model.named_parameters() if n.startswith("model.layers.3.")}


def test_badam_ratio_updates_a_share_of_each_weight(qwen2_model, tmp_path):
    model = tiny(qwen2_model)
    ft = finetuning(use_badam=True, badam_mode="ratio", badam_update_ratio=0.1)
    optimizer = build_optimizer(model, arguments(tmp_path, learning_rate=1e-2), ft)
    weight = model.model.layers[0].mlp.up_proj.weight
    before = weight.detach().clone()
    backward(model)
    optimizer.step()
    share = (weight.detach() != before).float().mean().item()
    assert 0 < share < 0.5  # a tenth of the entries (adjacent mask), far from all of them
    assert not model.model.embed_tokens.weight.requires_grad


def test_badam_run_keeps_gated_rows(qwen2_model, train_config, tmp_path):
    """A full BAdam run with a row gate: the gated rows (indeed the whole embedding) stay bit-identical, the
    decoder layers train."""
    from safetensors.torch import load_file

    from tunesmith.train.run import run_training

    cfg = train_config(qwen2_model, use_badam=True, badam_switch_interval=1, max_steps=4,
                       freeze_tokens="<|im_start|>,<|im_end|>", freeze_token_steps=100, learning_rate=1e-3)
    run_training(cfg)
    trained = load_file(str(tmp_path / "out" / "model.safetensors"))
    original = load_file(str(qwen2_model / "model.safetensors"))
    assert torch.equal(trained["model.embed_tokens.weight"], original["model.embed_tokens.weight"])
    for block in range(4):  # one block per step, ascending
        name = f"model.layers.{block}.mlp.up_proj.weight"
        assert not torch.equal(trained[name], original[name]), name
