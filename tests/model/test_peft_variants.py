"""PEFT variants through peft: DoRA and rsLoRA configured as asked, PiSSA's initial adapter leaving the output
unchanged and its conversion applying to the original base, OFT training and reloading in plain peft, LLaMA Pro's
expansion keeping the output and training only the new blocks, adapters stacked in order and merged."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tunesmith.config.errors import ConfigError
from tunesmith.config.load import build_config

IDS = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12]])


def finetuning(model: Path, **kw):
    raw = {"model_name_or_path": str(model), "stage": "sft", "do_train": True, "dataset": "a", "template": "qwen",
           "output_dir": "out", "lora_rank": 4, **kw}
    return build_config({k: (v, "test.yaml") for k, v in raw.items()})


def base(model: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)


def apply(model_dir: Path, **kw):
    from tunesmith.model.methods import apply_method

    cfg = finetuning(model_dir, **kw)
    return apply_method(base(model_dir), cfg.model, cfg.finetuning)


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS).logits


def test_dora_and_rslora_reach_peft(qwen2_model):
    dora = apply(qwen2_model, use_dora=True, lora_target="q_proj")
    layer = dora.base_model.model.model.layers[0].self_attn.q_proj
    assert "default" in layer.lora_magnitude_vector  # DoRA's magnitude vector trains with A and B
    assert layer.lora_magnitude_vector["default"].weight.requires_grad
    rs = apply(qwen2_model, use_rslora=True, lora_alpha=16, lora_target="q_proj")
    scaling = rs.base_model.model.model.layers[0].self_attn.q_proj.scaling["default"]
    assert scaling == pytest.approx(16 / math.sqrt(4))  # rsLoRA: alpha / sqrt(r), not alpha / r
    plain = apply(qwen2_model, lora_alpha=16, lora_target="q_proj")
    assert plain.base_model.model.model.layers[0].self_attn.q_proj.scaling["default"] == pytest.approx(4.0)


@pytest.mark.parametrize("pissa_iter", [-1, 4])
def test_pissa_initial_adapter_leaves_the_output_unchanged(qwen2_model, pissa_iter):
    expected = logits(base(qwen2_model))
    model = apply(qwen2_model, pissa_init=True, pissa_iter=pissa_iter)
    assert model.peft_config["default"].init_lora_weights == ("pissa" if pissa_iter == -1 else "pissa_niter_4")
    q = model.base_model.model.model.layers[0].self_attn.q_proj
    assert q.lora_B["default"].weight.abs().sum() > 0  # not LoRA's zero start: the principal components
    torch.testing.assert_close(logits(model), expected, rtol=1e-4, atol=1e-4)  # residual + adapter == base
    with model.disable_adapter():  # the residual alone is a different model
        assert (logits(model) - expected).abs().max() > 1e-2


def test_oft_builds_orthogonal_blocks_and_starts_as_the_base(llama3_model):
    expected = logits(base(llama3_model))
    model = apply(llama3_model, finetuning_type="oft", oft_block_size=32, module_dropout=0.1)
    config = model.peft_config["default"]
    assert type(config).__name__ == "OFTConfig" and config.oft_block_size == 32 and config.r == 0
    assert config.module_dropout == 0.1
    model.eval()
    torch.testing.assert_close(logits(model), expected, rtol=1e-4, atol=1e-4)  # identity rotations at start
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".oft_" in n for n in trainable)


def test_oft_target_is_not_read_and_says_so(llama3_model, caplog):
    with caplog.at_level("WARNING"):
        model = apply(llama3_model, finetuning_type="oft", oft_target="q_proj", lora_target="v_proj")
    assert "oft_target (q_proj) is not read" in caplog.text
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".v_proj." in n for n in trainable)


@pytest.mark.parametrize("keys,message", [
    ({"finetuning_type": "oft", "oft_rank": 4}, "exactly one of `oft_rank` and `oft_block_size`"),
    ({"finetuning_type": "oft", "oft_block_size": 0}, "exactly one of `oft_rank` and `oft_block_size`"),
    ({"finetuning_type": "full", "use_dora": True}, "`use_dora` is an option of `finetuning_type: lora`"),
    ({"finetuning_type": "oft", "pissa_init": True}, "`pissa_init` is an option of `finetuning_type: lora`"),
    ({"pissa_convert": True}, "needs `pissa_init: true`"),
    ({"pissa_init": True, "adapter_name_or_path": "a"}, "set `create_new_adapter: true`"),
    ({"pissa_init": True, "stage": "kto", "dataset": "f"}, "the residual, not the original model"),
    ({"use_llama_pro": True, "finetuning_type": "full"}, "not full"),
    ({"use_llama_pro": True, "freeze_trainable_layers": -2, "finetuning_type": "freeze"}, "must be positive"),
])
def test_peft_variant_rules(keys, message, qwen2_model):
    with pytest.raises(ConfigError) as err:
        finetuning(qwen2_model, **keys)
    assert message in str(err.value) and str(err.value).startswith("test.yaml")


def test_llama_pro_expansion_keeps_the_output_and_only_new_blocks_train(qwen2_model, tmp_path):
    from tunesmith.cli import main

    assert main(["llama-pro", "--model_name_or_path", str(qwen2_model), "--output_dir", str(tmp_path / "pro"),
                 "--num_expand", "2"]) == 0
    pro = tmp_path / "pro"
    assert json.loads((pro / "config.json").read_text())["num_hidden_layers"] == 6
    expanded = base(pro)
    torch.testing.assert_close(logits(expanded), logits(base(qwen2_model)), rtol=0, atol=0)
    assert expanded.model.layers[2].self_attn.o_proj.weight.abs().sum() == 0  # the copies of layers 1 and 3
    assert torch.equal(expanded.model.layers[2].self_attn.q_proj.weight, expanded.model.layers[1].self_attn.q_proj
                       .weight)
    frozen = apply(pro, finetuning_type="freeze", use_llama_pro=True, freeze_trainable_layers=2)
    layers = {int(n.split(".")[2]) for n, p in frozen.named_parameters() if p.requires_grad}
    assert layers == {2, 5} and all(p.requires_grad for p in frozen.model.layers[5].parameters())
    lora = apply(pro, use_llama_pro=True, freeze_trainable_layers=2, lora_target="all")
    adapted = {int(n.split(".")[4]) for n, p in lora.named_parameters() if p.requires_grad}
    assert adapted == {2, 5}
    with pytest.raises(ConfigError, match="not a multiple of `freeze_trainable_layers` 4"):
        apply(pro, finetuning_type="freeze", use_llama_pro=True, freeze_trainable_layers=4)
    assert main(["llama-pro", "--model_name_or_path", str(qwen2_model), "--output_dir", str(tmp_path / "bad"),
                 "--num_expand", "3"]) == 2  # 4 layers are not a multiple of 3


def random_lora(model, seed: int):
    """A LoRA adapter on q_proj and v_proj with random nonzero weights (as if trained)."""
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    return peft_model


def test_stacked_adapters_are_merged_in_order(qwen2_model, tmp_path):
    """adapter_name_or_path: a,b -> a merged into the base, then b merged on top (b was trained on base+a)."""
    first = random_lora(base(qwen2_model), 1)
    first.save_pretrained(tmp_path / "a")
    on_first = first.merge_and_unload()
    second = random_lora(on_first, 2)
    second.save_pretrained(tmp_path / "b")
    expected = logits(second.merge_and_unload())
    assert (expected - logits(base(qwen2_model))).abs().max() > 1e-2
    from tunesmith.model.methods import apply_lora

    cfg = finetuning(qwen2_model, adapter_name_or_path=f"{tmp_path / 'a'},{tmp_path / 'b'}")
    served = apply_lora(base(qwen2_model), cfg.model, cfg.finetuning, is_trainable=False)
    torch.testing.assert_close(logits(served), expected, rtol=1e-4, atol=1e-4)
    resumed = apply_lora(base(qwen2_model), cfg.model, cfg.finetuning)  # training: a merged, b resumed
    assert set(resumed.peft_config) == {"default"} and any(p.requires_grad for p in resumed.parameters())
    torch.testing.assert_close(logits(resumed), expected, rtol=1e-4, atol=1e-4)
    cfg = finetuning(qwen2_model, adapter_name_or_path=f"{tmp_path / 'a'},{tmp_path / 'b'}", create_new_adapter=True)
    fresh = apply_lora(base(qwen2_model), cfg.model, cfg.finetuning)  # both merged, a new zero-start adapter
    torch.testing.assert_close(logits(fresh), expected, rtol=1e-4, atol=1e-4)
    assert fresh.peft_config["default"].r == 4


def test_a_residual_pissa_adapter_is_refused(qwen2_model, tmp_path):
    from tunesmith.model.peft_variants import refuse_residual_adapter

    from peft import PeftModel

    fast = apply(qwen2_model, pissa_init=True, pissa_iter=2)
    perturb(fast)
    fast.save_pretrained(tmp_path / "pissa")
    reloaded = PeftModel.from_pretrained(base(qwen2_model), tmp_path / "pissa")  # peft splits W again: new sketch
    assert (logits(reloaded) - logits(fast)).abs().max() > 1e-2
    with pytest.raises(ConfigError, match="PiSSA adapter .* a fast randomised SVD"):
        refuse_residual_adapter(tmp_path / "pissa")
    with pytest.raises(ConfigError, match="train with `pissa_convert: true`"):
        apply(qwen2_model, adapter_name_or_path=str(tmp_path / "pissa"))
    exact = apply(qwen2_model, pissa_init=True, pissa_iter=-1)
    perturb(exact)
    exact.save_pretrained(tmp_path / "exact")
    refuse_residual_adapter(tmp_path / "exact")  # the exact SVD gives the same residual again: accepted
    reloaded = PeftModel.from_pretrained(base(qwen2_model), tmp_path / "exact")
    torch.testing.assert_close(logits(reloaded), logits(exact), rtol=1e-3, atol=1e-3)


def perturb(model) -> None:
    """Move the adapter's A and B as training would."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.add_(torch.randn(param.shape, generator=generator) * 0.05)


def test_pissa_conversion_applies_to_the_original_base(qwen2_model, tmp_path):
    """pissa_convert: the saved adapter, applied to the original base, computes what the trained PiSSA model does."""
    from peft import PeftModel

    from tunesmith.model.peft_variants import save_pissa_converted, save_pissa_initial

    model = apply(qwen2_model, pissa_init=True, pissa_iter=2, lora_target="q_proj,down_proj")
    save_pissa_initial(model, tmp_path)
    perturb(model)  # as if trained
    trained = logits(model)
    assert (trained - logits(base(qwen2_model))).abs().max() > 1e-2
    save_pissa_converted(model, tmp_path)
    converted = json.loads((tmp_path / "adapter_config.json").read_text())
    assert converted["r"] == 8 and converted["init_lora_weights"] is True
    assert (tmp_path / "pissa_converted" / "adapter_model.safetensors").is_file()
    on_original = PeftModel.from_pretrained(base(qwen2_model), tmp_path)
    torch.testing.assert_close(logits(on_original), trained, rtol=1e-4, atol=1e-4)
    raw = PeftModel.from_pretrained(base(qwen2_model), tmp_path / "pissa_backup")  # what the refusal prevents
    assert (logits(raw) - trained).abs().max() > 1e-2  # (peft re-splits W with a new random sketch)


@pytest.mark.parametrize("method", [{"finetuning_type": "oft"}, {"use_dora": True}, {"use_rslora": True}],
                         ids=["oft", "dora", "rslora"])
def test_variant_trains_and_reloads_in_plain_peft(method, llama3_model, tmp_path):
    """A few optimizer steps: the loss falls, the base stays bit-identical, and the saved adapter gives the same
    outputs loaded in plain peft and merged into the base (as chat and export apply it)."""
    from peft import PeftModel

    model = apply(llama3_model, **method)  # oft: LLaMA-Factory's default oft_block_size 32
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batch = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12, 13, 14]])
    model.train()
    values = []
    for _ in range(8):
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        values.append(loss.item())
    assert values[-1] < values[0] - 0.3, values  # oft: 6.27 -> 5.44 here; lora variants fall further
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    model.eval()
    model.save_pretrained(tmp_path / "adapter")
    reloaded = PeftModel.from_pretrained(base(llama3_model), tmp_path / "adapter").eval()
    torch.testing.assert_close(logits(reloaded), logits(model), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logits(reloaded.merge_and_unload()), logits(model), rtol=1e-4, atol=1e-4)
