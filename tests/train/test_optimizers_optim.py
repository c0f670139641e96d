"""`optim` values build the optimizer transformers names, and the optimizer keys are checked before anything
loads: LLaMA-Factory's refusals, the combinations it would run wrongly, and missing packages named with the pip
extra."""

from __future__ import annotations

import pytest

from tunesmith.config.errors import ConfigError

from .optimizer_helpers import arguments, backward, tiny

OPTIM_CLASSES = {
    "adamw_torch": "torch.optim.adamw.AdamW",
    "adafactor": "transformers.optimization.Adafactor",
    "sgd": "torch.optim.sgd.SGD",
    "adagrad": "torch.optim.adagrad.Adagrad",
    "rmsprop": "torch.optim.rmsprop.RMSprop",
    "adamw_8bit": "bitsandbytes.optim.adamw.AdamW",
    "lion_32bit": "bitsandbytes.optim.lion.Lion",
    "schedule_free_adamw": "schedulefree.adamw_schedulefree.AdamWScheduleFree",
    "schedule_free_sgd": "schedulefree.sgd_schedulefree.SGDScheduleFree",
    "galore_adamw": "galore_torch.adamw.AdamW",
    "apollo_adamw": "apollo_torch.apollo.AdamW",
}


@pytest.mark.parametrize("optim", sorted(OPTIM_CLASSES))
def test_optim_value_builds_the_named_class_and_steps(optim, qwen2_model, tmp_path):
    import torch
    from transformers import Trainer

    model = tiny(qwen2_model)
    extra = {"optim_target_modules": "all-linear"} if optim.startswith(("galore", "apollo")) else {}
    trainer = Trainer(model=model, args=arguments(tmp_path, optim=optim, **extra))
    optimizer = trainer.create_optimizer()
    assert f"{type(optimizer).__module__}.{type(optimizer).__name__}" == OPTIM_CLASSES[optim]
    if optim.startswith("schedule_free"):
        optimizer.train()
    weight = model.model.layers[0].mlp.up_proj.weight
    before = weight.detach().clone()
    backward(model)
    optimizer.step()
    assert not torch.equal(weight.detach(), before)


def config(train_config, qwen2_model, **keys):
    return train_config(qwen2_model, **keys)


@pytest.mark.parametrize("keys,message", [
    ({"finetuning_type": "lora", "use_galore": True}, "cannot be combined with `finetuning_type: lora`"),
    ({"use_galore": True, "use_apollo": True}, "`use_galore` and `use_apollo` each choose the optimizer"),
    ({"use_badam": True, "use_muon": True}, "`use_badam` and `use_muon`"),
    ({"loraplus_lr_ratio": 16.0}, "only valid for `finetuning_type: lora`"),
    ({"finetuning_type": "freeze", "use_badam": True}, "needs `finetuning_type: full`"),
    ({"use_galore": True, "galore_layerwise": True, "gradient_accumulation_steps": 2},
     "set `gradient_accumulation_steps: 1`"),
    ({"use_apollo": True, "apollo_layerwise": True, "max_grad_norm": 1.0}, "`max_grad_norm` cannot clip"),
    ({"use_apollo": True, "optim": "adafactor"}, "APOLLO builds on `optim` adamw_torch"),
    ({"use_galore": True, "galore_rank": 0}, "`galore_rank` must be positive"),
    ({"use_badam": True, "badam_update_ratio": 0.0, "badam_mode": "ratio"}, "`badam_update_ratio` must be"),
    ({"use_badam": True, "add_special_tokens": "<tool>"}, "BAdam trains decoder layers only"),
    ({"optim": "galore_adamw"}, "needs `optim_target_modules`"),
    ({"optim": "adamw_torch_xla"}, "needs a TPU/NPU device"),
    ({"optim": "galore_adamw_layerwise", "optim_target_modules": "all-linear",
      "gradient_accumulation_steps": 4}, "use `use_galore: true`"),
])
def test_refused_before_loading(keys, message, train_config, qwen2_model):
    with pytest.raises(ConfigError, match=message.replace("`", ".").replace("(", ".").replace(")", ".")):
        config(train_config, qwen2_model, **keys)


def test_missing_package_names_the_extra(train_config, qwen2_model, monkeypatch):
    from tunesmith.config import rules_optimizers

    monkeypatch.setattr(rules_optimizers, "installed", lambda module: module != "badam")
    with pytest.raises(ConfigError, match=r"`use_badam` needs the badam package; install it with `pip install "
                                          r"'tunesmith\[optimizers\]'`"):
        config(train_config, qwen2_model, use_badam=True)
    monkeypatch.setattr(rules_optimizers, "installed", lambda module: module != "schedulefree")
    with pytest.raises(ConfigError, match=r"`optim: schedule_free_adamw` needs the schedulefree package"):
        config(train_config, qwen2_model, optim="schedule_free_adamw")


def test_defaults_are_llamafactorys(train_config, qwen2_model):
    ft = config(train_config, qwen2_model).finetuning
    assert (ft.galore_target, ft.galore_rank, ft.galore_update_interval, ft.galore_scale, ft.galore_proj_type) == \
        (("all",), 16, 200, 2.0, "std")
    assert (ft.apollo_rank, ft.apollo_update_interval, ft.apollo_scale, ft.apollo_proj, ft.apollo_proj_type,
            ft.apollo_scale_type, ft.apollo_scale_front) == (16, 200, 32.0, "random", "std", "channel", False)
    assert (ft.badam_mode, ft.badam_start_block, ft.badam_switch_mode, ft.badam_switch_interval,
            ft.badam_update_ratio, ft.badam_mask_mode, ft.badam_verbose) == ("layer", None, "ascending", 50, 0.05,
                                                                            "adjacent", 0)
    assert (ft.loraplus_lr_ratio, ft.loraplus_lr_embedding) == (None, 1e-6)
    assert not (ft.use_galore or ft.use_apollo or ft.use_badam or ft.use_adam_mini or ft.use_muon)


@pytest.mark.parametrize("keys,message", [
    ({"use_galore": True, "galore_layerwise": True}, "set `galore_layerwise: false` for distributed training"),
    ({"use_badam": True, "badam_mode": "ratio"}, "ratio-based BAdam does not support distributed training"),
    ({"use_badam": True}, "only under DeepSpeed ZeRO-3"),
])
def test_distributed_refusals(keys, message, qwen2_model, tmp_path, monkeypatch):
    """LLaMA-Factory's refusals for several processes: layer-wise steps, ratio BAdam, layer BAdam without ZeRO-3."""
    from transformers import TrainingArguments

    from tunesmith.train.optimizers import build_optimizer

    from .optimizer_helpers import finetuning

    args = arguments(tmp_path)
    monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: 2))
    with pytest.raises(ConfigError, match=message.replace("`", ".")):
        build_optimizer(tiny(qwen2_model), args, finetuning(**keys))


@pytest.mark.parametrize("keys,expected", [
    ({}, "AdamW"), ({"use_muon": True}, "ChainedOptimizer"), ({"use_adam_mini": True}, "Adam_mini"),
    ({"use_galore": True, "galore_rank": 8}, "AdamW"),
])
def test_rollout_loops_get_the_family(keys, expected, qwen2_model, tmp_path):
    """The rollout loops (ppo, grpo) build their optimizer with setup.create_optimizer: the family the keys turn
    on, for the policy with its value head too (Adam-mini finds the model's head counts inside the wrapper)."""
    from tunesmith.stages.rl.batch import PolicyWithValue
    from tunesmith.train.setup import create_optimizer

    from .optimizer_helpers import finetuning

    model = PolicyWithValue(tiny(qwen2_model), 64)
    optimizer = create_optimizer(model, arguments(tmp_path), finetuning(**keys))
    assert type(optimizer).__name__ == expected
    assert ("rank" in optimizer.param_groups[-1]) == ("use_galore" in keys)
    trained = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert id(model.value_head.weight) in trained
