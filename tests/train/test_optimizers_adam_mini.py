"""Adam-mini (`use_adam_mini`): one second-moment value per attention head (query heads, key/value heads) and
per output neuron, built with the model's head counts."""

from __future__ import annotations

from tunesmith.train.optimizers import build_optimizer

from .optimizer_helpers import arguments, backward, finetuning, tiny


def test_adam_mini_keeps_one_second_moment_per_block(qwen2_model, tmp_path):
    model = tiny(qwen2_model)  # hidden 64, 4 query heads, 2 key/value heads, vocabulary 512
    optimizer = build_optimizer(model, arguments(tmp_path), finetuning(use_adam_mini=True))
    backward(model)
    optimizer.step()
    params = dict(model.named_parameters())
    state = {name: optimizer.state[params[name]] for name in params}
    assert state["model.layers.0.self_attn.q_proj.weight"]["vmean"].shape == (4, 1)
    assert state["model.layers.0.self_attn.k_proj.weight"]["vmean"].shape == (2, 1)
    assert state["model.embed_tokens.weight"]["vmean"].shape == (512, 1)
    assert state["model.layers.0.mlp.down_proj.weight"]["vmean"].numel() == 64
    second_moments = sum(s["vmean"].numel() for s in state.values() if "vmean" in s)
    assert second_moments * 20 < sum(p.numel() for p in params.values())  # far fewer than Adam's one per weight
