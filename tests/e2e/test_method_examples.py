"""LLaMA-Factory's examples/extras YAMLs of the PEFT and loss variants run unchanged (model path and dataset made
local) on the tiny models, each checked for what its method promises: the loss variant is the one planned, PiSSA's
converted adapter applies to the original base, OFT's adapter reloads in plain peft, LLaMA Pro trains only the
inserted blocks. The long ones are `slow` (their examples train 6 steps of 8 micro-batches); fast tests of the
same paths are in tests/model/test_peft_variants.py and tests/train/test_loss_variants.py; the ASFT example (one
step) runs by default and covers the standard-path variant loss with a reference in the Trainer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tunesmith.cli import main

EXTRAS = Path(__file__).resolve().parents[1] / "fixtures" / "llamafactory" / "extras"
IDS = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12]])


def run_example(name: str, model: Path, data_dir: Path, tmp_path: Path, monkeypatch) -> dict:
    shutil.copytree(data_dir, tmp_path / "data")
    (tmp_path / name).write_text((EXTRAS / name).read_text().replace("MODEL_PATH", str(model)))
    monkeypatch.chdir(tmp_path)
    assert main(["train", name]) == 0
    return {}


def card_of(out: Path) -> dict:
    return json.loads((out / "tunesmith.json").read_text())


def base(model: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)


@pytest.mark.parametrize("name,out,variant,steps", [
    pytest.param("dft_qwen2_full_sft.yaml", "saves/qwen2-1_5b/full/sft", "dft", 6,  # 10 examples: 2 steps of 1 x 8,
                 marks=pytest.mark.slow),  # 3 epochs
    pytest.param("eaft_qwen25_05b_eaft_full.yaml", "qwen2.5-0_5b/full/sft_eaft", "eaft", 3,  # 1 step of 2 x 8, 3 epochs
                 marks=pytest.mark.slow),
    ("asft_qwen2_full_asft.yaml", "saves/qwen2-7b/full/asft", "asft (dft + 0.05", 1),  # 1 step of 4 x 8, 1 epoch
])
def test_loss_variant_examples(name, out, variant, steps, qwen2_model, data_dir, tmp_path, monkeypatch):
    run_example(name, qwen2_model, data_dir, tmp_path, monkeypatch)
    card = card_of(tmp_path / out)
    assert card["plan"]["loss_variant"].startswith(variant)
    assert card["plan"]["loss"] == ("standard" if variant.startswith("asft") else "chunked")
    assert card["global_step"] == steps and 0 < card["train_loss"] < 20
    if variant.startswith("asft"):
        assert card["reference"]["kind"] == "frozen model"


@pytest.mark.slow  # fast: tests/model/test_peft_variants.py test_pissa_conversion_applies_to_the_original_base
def test_pissa_example_saves_an_adapter_for_the_original_base(llama3_model, data_dir, tmp_path, monkeypatch):
    from peft import PeftModel

    from tunesmith.model.peft_variants import refuse_residual_adapter

    run_example("pissa_llama3_lora_sft.yaml", llama3_model, data_dir, tmp_path, monkeypatch)
    out = tmp_path / "saves/llama3-8b/lora/sft"
    converted = json.loads((out / "adapter_config.json").read_text())
    assert converted["r"] == 16 and converted["init_lora_weights"] is True  # rank 8 PiSSA -> rank 16 LoRA
    refuse_residual_adapter(out)  # output_dir's adapter applies to the original base
    with pytest.raises(Exception, match="pissa_converted"):
        refuse_residual_adapter(out / "pissa_backup")

    original = base(llama3_model)
    weights = original.state_dict()
    with_converted = PeftModel.from_pretrained(base(llama3_model), out).merge_and_unload().state_dict()
    trained, initial = (load_file(str(out / d / "adapter_model.safetensors")) for d in ("pissa_backup", "pissa_init"))
    scale = converted["lora_alpha"] / converted["r"]  # the PiSSA adapter's alpha / r: the conversion doubles both
    moved = 0
    for key in [k for k in trained if ".lora_A." in k]:  # trained model: W - s·B0A0 + s·B'A'
        module = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
        b_key = key.replace(".lora_A.", ".lora_B.")
        expected = scale * (trained[b_key] @ trained[key] - initial[b_key] @ initial[key])
        torch.testing.assert_close(with_converted[f"{module}.weight"] - weights[f"{module}.weight"], expected,
                                   rtol=1e-4, atol=1e-6)
        moved += int(expected.abs().max() > 1e-7)
    assert moved > 0  # the adapter trained
    from tunesmith.config.load import build_config
    from tunesmith.infer.load import load_for_inference

    loaded = load_for_inference(build_config({"model_name_or_path": (str(out), "t")}, purpose="infer"))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(IDS).logits, base_with(with_converted, llama3_model)(IDS).logits,
                                   rtol=1e-4, atol=1e-4)


def base_with(state: dict, model_dir: Path):
    model = base(model_dir)
    model.load_state_dict(state)
    return model.eval()


@pytest.mark.slow  # fast: tests/model/test_peft_variants.py test_variant_trains_and_reloads_in_plain_peft
def test_oft_example_trains_and_reloads_in_plain_peft(llama3_model, data_dir, tmp_path, monkeypatch):
    from peft import PeftModel

    run_example("oft_llama3_oft_sft.yaml", llama3_model, data_dir, tmp_path, monkeypatch)
    out = tmp_path / "saves/llama3-8b/oft/sft"
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == "OFT" and config["oft_block_size"] == 32
    assert card_of(out)["is_adapter"] is True
    weights = load_file(str(out / "adapter_model.safetensors"))
    assert weights and any(w.abs().max() > 0 for w in weights.values())  # OFT starts at zero (identity)
    reloaded = PeftModel.from_pretrained(base(llama3_model), out).eval()
    with torch.no_grad():
        assert (reloaded(IDS).logits - base(llama3_model)(IDS).logits).abs().max() > 1e-6


@pytest.mark.slow  # fast: tests/model/test_peft_variants.py test_llama_pro_expansion_keeps_the_output_...
def test_llama_pro_example_trains_only_the_inserted_blocks(data_dir, tmp_path, monkeypatch):
    from tunesmith.model.tiny import build_tiny_model

    original = build_tiny_model(tmp_path / "llama3-8", "llama3", vocab_size=512, hidden_size=64, num_layers=8,
                                num_heads=4, num_kv_heads=2, intermediate_size=128, seed=0)
    pro = tmp_path / "models/llama3-8b-pro"  # examples/extras/llama_pro/expand.sh, on the tiny model
    assert main(["llama-pro", "--model_name_or_path", str(original), "--output_dir", str(pro),
                 "--num_expand", "8"]) == 0
    run_example("llama_pro_llama3_freeze_sft.yaml", pro, data_dir, tmp_path, monkeypatch)
    before = load_file(str(pro / "model.safetensors"))
    after = load_file(str(tmp_path / "saves/llama3-8b-pro/freeze/sft/model.safetensors"))
    assert before.keys() == after.keys()
    changed = {key for key in before if not torch.equal(before[key], after[key])}
    layers = {int(key.split(".")[2]) for key in changed}
    assert layers == set(range(1, 16, 2))  # every inserted block (one after each original layer) trained
    assert all(key.startswith("model.layers.") for key in changed)  # nothing else moved
