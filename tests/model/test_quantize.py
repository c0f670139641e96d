"""Quantization keys, the refusals checked before loading (seed 001: QLoRA takes exactly one adapter; full and
freeze cannot train a quantized model), the quantization configs built from LLaMA-Factory's keys, missing
packages named, and tiny quantized models (bitsandbytes 4/8 bit, hqq) that LoRA trains on the CPU."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from tunesmith.config.errors import ConfigError
from tunesmith.config.load import build_config
from tunesmith.model import quantize

pytest.importorskip("bitsandbytes")


def cfg_of(purpose=None, **kw):
    raw = {"model_name_or_path": "m", "dataset": "a", "output_dir": "o", "template": "qwen", "finetuning_type": "lora",
           **kw}
    return build_config({k: (v, "test.yaml") for k, v in raw.items()}, purpose=purpose)


def test_keys_have_llamafactory_defaults():
    model = cfg_of().model
    assert (model.quantization_bit, model.quantization_method, model.quantization_type) == (None, "bnb", "nf4")
    assert model.double_quantization is True and model.quantization_device_map is None
    export = cfg_of().export
    assert (export.export_quantization_bit, export.export_quantization_nsamples,
            export.export_quantization_maxlen) == (None, 128, 1024)


@pytest.mark.parametrize("overrides,message", [
    ({"finetuning_type": "full"}, r"test.yaml: `finetuning_type: full` cannot train a 4-bit bnb model: quantized "
                                  r"weights are stored in packed low-bit form"),
    ({"finetuning_type": "freeze"}, r"`finetuning_type: freeze` cannot train a 4-bit bnb model"),
    ({"adapter_name_or_path": "a1,a2"}, r"test.yaml: a quantized model \(4-bit bnb\) takes exactly one adapter, got 2 "
                                        r"\(a1, a2\)"),
    ({"adapter_name_or_path": "a1", "create_new_adapter": True}, r"`create_new_adapter` would merge a1 into the "
                                                                 r"quantized weights"),
    ({"quantization_bit": 3}, r"`quantization_bit: 3` is not available with `quantization_method: bnb`, which "
                              r"quantizes to 4, 8 bits"),
    ({"quantization_method": "eetq"}, r"`quantization_bit: 4` is not available with `quantization_method: eetq`"),
    ({"quantization_device_map": "auto"}, r"`quantization_device_map: auto` is for inference"),
    ({"ref_model_quantization_bit": 5}, r"`ref_model_quantization_bit: 5` is not available"),
])
def test_seed_rules_and_llamafactory_refusals_fail_before_loading(overrides, message):
    with pytest.raises(ConfigError, match=message):
        cfg_of(**{"quantization_bit": 4, **overrides})


def test_one_adapter_and_hqq_bits_are_accepted():
    assert cfg_of(quantization_bit=4, adapter_name_or_path="a1").model.adapter_name_or_path == ("a1",)
    assert cfg_of(quantization_bit=3, quantization_method="hqq").model.quantization_bit == 3
    assert cfg_of(adapter_name_or_path="a1,a2").model.adapter_name_or_path == ("a1", "a2")  # plain LoRA stacks


def test_pre_quantized_checkpoint_refuses_full_before_loading(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2", "quantization_config": {
        "quant_method": "gptq", "bits": 4}}))
    with pytest.raises(ConfigError, match=r"`finetuning_type: full` cannot train a pre-quantized gptq model"):
        cfg_of(model_name_or_path=str(tmp_path), finetuning_type="full")
    with pytest.raises(ConfigError, match=r"pre-quantized gptq\) takes exactly one adapter"):
        cfg_of(model_name_or_path=str(tmp_path), adapter_name_or_path="a,b")


def test_fp8_and_mxfp4_checkpoints_load_de_quantized_and_train_any_way(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2", "quantization_config": {
        "quant_method": "fp8", "weight_block_size": [128, 128]}}))
    cfg = cfg_of(model_name_or_path=str(tmp_path), finetuning_type="full")  # as in LLaMA-Factory
    config = quantize.load_kwargs(cfg.model, str(tmp_path), torch.bfloat16)["quantization_config"]
    assert type(config).__name__ == "FineGrainedFP8Config" and config.dequantize


def test_export_quantization_needs_a_dataset_and_valid_bits():
    export = {"export_dir": "e", "model_name_or_path": "m"}
    with pytest.raises(ConfigError, match="needs `export_quantization_dataset`"):
        build_config({k: (v, "x") for k, v in {**export, "export_quantization_bit": 4}.items()}, purpose="export")
    with pytest.raises(ConfigError, match="must be one of 2, 3, 4, 8"):
        build_config({k: (v, "x") for k, v in {**export, "export_quantization_bit": 5,
                                                 "export_quantization_dataset": "d"}.items()}, purpose="export")


def test_a_missing_backend_is_named_when_the_config_is_read(monkeypatch):
    from tunesmith.config import rules_quantization

    real = rules_quantization.importlib.util.find_spec
    monkeypatch.setattr(rules_quantization.importlib.util, "find_spec",
                        lambda name: None if name == "hqq" else real(name))
    with pytest.raises(ConfigError, match=r"test.yaml: `quantization_method: hqq` needs hqq, which is not installed: "
                                          r"`pip install hqq` \(or `pip install 'tunesmith\[quantization\]'`\)"):
        cfg_of(quantization_bit=4, quantization_method="hqq")
    assert cfg_of(quantization_method="hqq").model.quantization_bit is None  # not quantizing: nothing needed


def test_bnb_configs_follow_the_keys():
    four = quantize.load_kwargs(cfg_of(quantization_bit=4, quantization_type="fp4", double_quantization=False).model,
                                "nowhere", torch.bfloat16)
    config = four["quantization_config"]
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "fp4" and not config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16 and config.bnb_4bit_quant_storage == torch.bfloat16
    assert four["device_map"] == {"": "cpu"}
    eight = quantize.load_kwargs(cfg_of(quantization_bit=8).model, "nowhere", torch.float32)["quantization_config"]
    assert eight.load_in_8bit and not eight.load_in_4bit
    assert quantize.load_kwargs(cfg_of().model, "nowhere", torch.float32) == {}


def test_missing_packages_are_named_before_loading(tmp_path, monkeypatch):
    bnb4, plain = cfg_of(quantization_bit=4).model, cfg_of().model
    eetq = cfg_of(quantization_bit=8, quantization_method="eetq").model
    real = quantize.importlib.util.find_spec
    monkeypatch.setattr(quantize.importlib.util, "find_spec",
                        lambda name: None if name in ("bitsandbytes", "gptqmodel") else real(name))
    with pytest.raises(ConfigError, match=r"`quantization_method: bnb` needs bitsandbytes: `pip install bitsandbytes` "
                                          r"\(or `pip install 'tunesmith\[quantization\]'`\)"):
        quantize.load_kwargs(bnb4, "nowhere", torch.float32)
    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "gptq", "bits": 4}}))
    with pytest.raises(ConfigError, match=r"is a gptq-quantized checkpoint; loading it needs (optimum, )?gptqmodel"):
        quantize.load_kwargs(plain, str(tmp_path), torch.float32)
    with pytest.raises(ConfigError, match="`quantization_method: eetq` needs"):
        monkeypatch.setattr(quantize.importlib.util, "find_spec", lambda name: None)
        quantize.load_kwargs(eetq, "nowhere", torch.float32)


@pytest.mark.parametrize("bits,method,layer", [(4, "bnb", "Linear4bit"), (8, "bnb", "Linear8bitLt"),
                                               (4, "hqq", "HQQLinear")])
def test_tiny_model_quantizes_and_lora_trains_on_top(bits, method, layer, qwen2_model, caplog):
    from peft import LoraConfig, get_peft_model

    from tunesmith.model.load import load_model
    from tunesmith.model.methods import lora_target_modules

    if method == "hqq":
        pytest.importorskip("hqq")
    args = cfg_of(model_name_or_path=str(qwen2_model), quantization_bit=bits, quantization_method=method).model
    cast_log = logging.getLogger("bitsandbytes.autograd._functions")
    for done in [f for f in cast_log.filters if isinstance(f, quantize._OnceFilter)]:
        cast_log.removeFilter(done)  # the line is logged once per process: an earlier 8-bit test may have had it
    with caplog.at_level(logging.INFO, logger="tunesmith"):
        model = load_model(args, torch.float32)
    assert f"Quantizing model to {bits} bit with" in caplog.text
    assert type(model.model.layers[0].self_attn.q_proj).__name__ == layer
    assert quantize.is_quantized(model)
    if bits == 8:  # bitsandbytes would log its input cast at every call of every 8-bit layer: once is enough
        with caplog.at_level(logging.WARNING, logger="bitsandbytes"):
            model(input_ids=torch.randint(0, 400, (1, 4)))
            model(input_ids=torch.randint(0, 400, (1, 4)))
        assert caplog.text.count("MatMul8bitLt: inputs will be cast") == 1
    assert type(model.get_input_embeddings()) is torch.nn.Embedding  # embeddings are never quantized
    assert model.get_input_embeddings().weight.dtype == torch.float32
    model = quantize.prepare_for_training(model, "lora", {})
    targets = lora_target_modules(model, ("all",))
    assert {"q_proj", "down_proj"} <= set(targets)
    model = get_peft_model(model, LoraConfig(r=4, target_modules=targets))
    before = quantize.quantized_state(model)
    assert before
    ids = torch.randint(0, 400, (2, 12))
    model(input_ids=ids, labels=ids).loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    after = quantize.quantized_state(model)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_full_finetuning_of_a_quantized_model_is_refused_after_loading_too(qwen2_model):
    from tunesmith.model.load import load_model

    model = load_model(cfg_of(model_name_or_path=str(qwen2_model), quantization_bit=4).model, torch.float32)
    with pytest.raises(ConfigError, match=r"`finetuning_type: full` cannot train a quantized model \(bitsandbytes\).*`finetuning_type: lora` \(QLoRA\) or oft"):
        quantize.prepare_for_training(model, "full", {})
