"""QLoRA end to end on the CPU (bitsandbytes' CPU backend, hqq): LLaMA-Factory's train_qlora examples run
unchanged; new <extra_id_N> rows train in float32 beside the quantized base while every quantized byte and every
other frozen weight stays bit-identical; chat serves the quantized base with its adapter; export merges onto the
unquantized base; a quantized reference model; export quantization refused clearly without its packages."""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from tunesmith.cli import main
from tunesmith.config.errors import ConfigError
from tunesmith.config.load import build_config
from tunesmith.model.quantize import is_quantized, quantized_state
from tunesmith.train.callbacks.log_file import read_log
from tunesmith.train.run import run_training

pytest.importorskip("bitsandbytes")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "llamafactory" / "train_qlora"


@pytest.mark.parametrize("name", ["qwen3_lora_sft_otfq.yaml", "qwen3_lora_sft_bnb_npu.yaml"])
def test_llamafactory_qlora_examples_run(name, qwen2_model, data_dir, tmp_path, monkeypatch, caplog):
    shutil.copytree(data_dir, tmp_path / "data")
    (tmp_path / name).write_text((FIXTURES / name).read_text().replace("MODEL_PATH", str(qwen2_model)))
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO, logger="tunesmith"):
        assert main(["train", name, "max_steps=1"]) == 0  # one step of 8 accumulated examples
    double = "double_quantization: false" not in (FIXTURES / name).read_text()
    assert f"Quantizing model to 4 bit with bitsandbytes (nf4{', double quantization' * double}" in caplog.text
    out = tmp_path / "saves/qwen3-4b/lora/sft"
    assert (out / "adapter_model.safetensors").exists()
    card = json.loads((out / "tunesmith.json").read_text())
    assert card["global_step"] == 1 and card["settings"]["quantization_bit"] == 4
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert {"q_proj", "down_proj"} <= set(adapter["target_modules"])  # lora_target: all finds the 4-bit layers


def raw(tensor):
    """Bytes (packed 4-bit storage seen as float holds NaN patterns, never equal to themselves)."""
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).clone()


class Snapshots(TrainerCallback):
    """The quantized layers' bytes, every other frozen tensor, and the trained embedding matrices, at the start
    and after each step."""

    def __init__(self):
        self.start = self.frozen = self.rows = None
        self.steps = []

    @staticmethod
    def embeddings(model):
        return [p.detach().clone() for n, p in model.named_parameters() if p.requires_grad and p.dim() == 2
                and p.shape[0] >= 512]

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.start = quantized_state(model)
        self.frozen = {n: raw(p) for n, p in model.named_parameters() if not p.requires_grad}
        self.rows = self.embeddings(model)
        self.dtypes = {p.dtype for p in model.parameters() if p.requires_grad}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.steps.append(self.embeddings(model))

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.end = quantized_state(model)
        self.frozen_end = {n: raw(p) for n, p in model.named_parameters() if not p.requires_grad}


@pytest.fixture()
def marker_data(tmp_path):
    root = tmp_path / "marks"
    root.mkdir()
    rows = [{"instruction": f"mark {i}", "input": "", "output": f"<extra_id_{i % 3}> item {i} <extra_id_{(i + 1) % 3}>"}
            for i in range(8)]
    (root / "marks.json").write_text(json.dumps(rows))
    (root / "dataset_info.json").write_text(json.dumps({"marks": {"file_name": "marks.json"}}))
    return root


def qlora_config(model, data, out, **kw):
    raw = {"model_name_or_path": str(model), "stage": "sft", "finetuning_type": "lora", "dataset": "marks",
           "dataset_dir": str(data), "template": "qwen3_nothink", "cutoff_len": 64, "output_dir": str(out),
           "overwrite_output_dir": True, "per_device_train_batch_size": 4, "learning_rate": 1e-2, "max_steps": 6,
           "logging_steps": 1, "save_strategy": "no", "report_to": "none", "seed": 0, "disable_tqdm": True,
           "lr_scheduler_type": "constant", "lora_rank": 4, "quantization_bit": 4, **kw}
    return build_config({k: (v, "test") for k, v in raw.items()})


def test_new_tokens_train_beside_the_quantized_base_and_frozen_weights_stay_bit_identical(
        qwen2_untied_model, marker_data, tmp_path, caplog):
    """LLaMA-Factory refuses to resize a quantized model; here the new <extra_id_N> rows train in float32
    (embedding and untied head, peft's modules_to_save) while the 4-bit layers stay byte for byte as loaded,
    the rows' freeze gate holds them for 2 steps, and their loss weight and metrics work as in LoRA."""
    snaps = Snapshots()
    cfg = qlora_config(qwen2_untied_model, marker_data, tmp_path / "out", add_extra_id_tokens=3,
                       freeze_extra_id_steps=2, extra_id_loss_weight=2.0, weight_decay=0.1, max_steps=4)
    with caplog.at_level(logging.INFO, logger="tunesmith"):
        result = run_training(cfg, extra_callbacks=[snaps])
    assert "Quantizing model to 4 bit with bitsandbytes" in caplog.text
    assert snaps.start and snaps.start.keys() == snaps.end.keys()
    assert all(torch.equal(snaps.start[k], snaps.end[k]) for k in snaps.start)  # every quantized byte as loaded
    assert snaps.frozen.keys() == snaps.frozen_end.keys()
    assert all(torch.equal(snaps.frozen[k], snaps.frozen_end[k]) for k in snaps.frozen)  # norms, original tables
    assert snaps.dtypes == {torch.float32}

    tok = __import__("transformers").AutoTokenizer.from_pretrained(result.output_dir)
    ids = [tok.convert_tokens_to_ids(f"<extra_id_{i}>") for i in range(3)]
    assert len(snaps.rows) == 2  # untied: the embedding and the head train as float32 copies
    for step in range(2):  # held by the freeze gate
        assert all(torch.equal(now[ids], first[ids]) for now, first in zip(snaps.steps[step], snaps.rows))
    assert all(not torch.equal(now[ids], first[ids]) for now, first in zip(snaps.steps[-1], snaps.rows))

    logs = [r for r in read_log(result.output_dir) if "loss" in r]
    assert all({"special_loss", "special_acc", "ordinary_loss"} <= set(r) for r in logs)
    assert logs[-1]["loss"] < logs[0]["loss"] - 0.3
    saved = __import__("safetensors.torch", fromlist=["load_file"]).load_file(
        result.output_dir / "adapter_model.safetensors")
    assert any("embed_tokens" in k for k in saved) and any("lm_head" in k for k in saved)


@pytest.mark.parametrize("overrides", [{"quantization_bit": 8}, {"quantization_method": "hqq"},
                                       {"quantization_method": "hqq", "quantization_bit": 2}])
def test_other_quantizations_train_lora(overrides, qwen2_model, data_dir, tmp_path):
    if overrides.get("quantization_method") == "hqq" and importlib.util.find_spec("hqq") is None:
        pytest.skip("hqq is not installed")
    cfg = qlora_config(qwen2_model, data_dir, tmp_path / "out", dataset="arith", learning_rate=2e-2, **overrides)
    result = run_training(cfg)
    losses = [r["loss"] for r in read_log(result.output_dir) if "loss" in r]
    assert len(losses) == 6 and min(losses[-2:]) < losses[0] - 0.2


@pytest.fixture(scope="module")
def qlora_run(tmp_path_factory, qwen2_untied_model, data_dir):
    out = tmp_path_factory.mktemp("qlora") / "run"
    cfg = qlora_config(qwen2_untied_model, data_dir, out, dataset="arith", add_special_tokens="<tool>",
                       learning_rate=2e-2)
    run_training(cfg)
    return out


def test_chat_serves_the_quantized_base_with_its_adapter_unmerged(qlora_run, caplog):
    from peft import PeftModel

    from tunesmith.infer.load import load_for_inference

    raw = {"model_name_or_path": str(qlora_run), "quantization_bit": 4, "max_new_tokens": 4, "do_sample": False}
    with caplog.at_level(logging.INFO, logger="tunesmith"):
        loaded = load_for_inference(build_config({k: (v, "t") for k, v in raw.items()}, purpose="infer"), "cpu")
    assert isinstance(loaded.model, PeftModel) and is_quantized(loaded.model)
    assert f"Serving adapter {qlora_run} on the quantized base (not merged)" in caplog.text
    ids = loaded.tokenizer("<tool> 1+1=", return_tensors="pt")["input_ids"]
    reply = loaded.model.generate(input_ids=ids, max_new_tokens=4, do_sample=False)
    assert reply.shape[1] == ids.shape[1] + 4 or int(reply[0, -1]) in loaded.stop_ids
    plain = {"model_name_or_path": str(qlora_run)}
    with caplog.at_level(logging.INFO, logger="tunesmith"):
        merged = load_for_inference(build_config({k: (v, "t") for k, v in plain.items()}, purpose="infer"), "cpu")
    assert not is_quantized(merged.model)
    assert "trained on a 4-bit quantized base; it is served merged onto the full-precision base" in caplog.text
    assert main(["chat", str(qlora_run), "quantization_bit=4", "--query", "1+1=", "max_new_tokens=3"]) == 0


def test_two_adapters_on_a_quantized_base_are_refused_when_serving(qlora_run, qwen2_untied_model):
    from tunesmith.infer.load import load_for_inference

    raw = {"model_name_or_path": str(qwen2_untied_model), "adapter_name_or_path": f"{qlora_run},{qlora_run}",
           "quantization_bit": 4, "template": "qwen3_nothink"}
    with pytest.raises(ConfigError, match="a quantized base takes exactly one adapter, got 2"):
        load_for_inference(build_config({k: (v, "t") for k, v in raw.items()}, purpose="infer"), "cpu")


def test_export_merges_onto_the_unquantized_base(qlora_run, tmp_path, caplog):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "merged"
    with caplog.at_level(logging.INFO, logger="tunesmith"):
        assert main(["export", str(qlora_run), f"export_dir={out}", "quantization_bit=4"]) == 0
    assert "merging onto the unquantized base" in caplog.text and "trained on a 4-bit copy of it" in caplog.text
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert not is_quantized(merged) and "quantization_config" not in json.loads((out / "config.json").read_text())
    card = json.loads((qlora_run / "tunesmith.json").read_text())
    base = AutoModelForCausalLM.from_pretrained(card["base_model"], dtype=torch.float32)
    base.resize_token_embeddings(card["embedding_rows"], mean_resizing=False)
    adapted = PeftModel.from_pretrained(base, qlora_run)
    ids = torch.tensor([[5, 17, 40, 99, 3]])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, adapted(ids).logits, rtol=1e-4, atol=1e-4)


def test_export_quantization_is_refused_clearly_without_gptq_packages(qlora_run, tmp_path, monkeypatch, capsys):
    from tunesmith.infer import export

    monkeypatch.setattr(export, "GPTQ_PACKAGES", (("no_such_module_y", "optimum"), ("no_such_module_x", "gptqmodel")))
    (tmp_path / "calib.txt").write_text("some text to calibrate on\n")
    code = main(["export", str(qlora_run), f"export_dir={tmp_path / 'q'}", "export_quantization_bit=4",
                 f"export_quantization_dataset={tmp_path / 'calib.txt'}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "quantizes the export with GPTQ, which needs optimum and gptqmodel (`pip install optimum gptqmodel`" in err
    assert "Exporting" not in err and not (tmp_path / "q").exists()  # refused before anything loads


def test_reference_model_quantized_on_the_fly(qwen2_model, data_dir, tmp_path, caplog):
    cfg = build_config({k: (v, "t") for k, v in {
        "model_name_or_path": str(qwen2_model), "stage": "dpo", "finetuning_type": "lora", "dataset": "pairs",
        "dataset_dir": str(data_dir), "template": "qwen3_nothink", "cutoff_len": 64, "output_dir": str(tmp_path),
        "overwrite_output_dir": True, "per_device_train_batch_size": 2, "max_steps": 2, "save_strategy": "no",
        "report_to": "none", "disable_tqdm": True, "ref_model": str(qwen2_model), "ref_model_quantization_bit": 8,
    }.items()})
    with caplog.at_level(logging.INFO, logger="tunesmith"):
        result = run_training(cfg)
    assert caplog.text.count("Quantizing model to 8 bit with bitsandbytes") == 1  # the reference only
    assert result.global_step == 2


@pytest.fixture(scope="module")
def bnb_checkpoint(tmp_path_factory, qwen2_model):
    """A bitsandbytes-serialized 4-bit checkpoint (config.json carries its quantization_config)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    out = tmp_path_factory.mktemp("prequantized") / "bnb4"
    model = AutoModelForCausalLM.from_pretrained(qwen2_model, dtype=torch.float32, quantization_config=BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_compute_dtype=torch.float32, bnb_4bit_quant_type="nf4"))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(qwen2_model).save_pretrained(out)
    return out


def test_pre_quantized_checkpoint_trains_lora_and_exports_de_quantized(bnb_checkpoint, data_dir, tmp_path, caplog):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    with pytest.raises(ConfigError, match="`finetuning_type: full` cannot train a pre-quantized bitsandbytes model"):
        qlora_config(bnb_checkpoint, data_dir, tmp_path / "full", dataset="arith", quantization_bit=None,
                     finetuning_type="full")
    cfg = qlora_config(bnb_checkpoint, data_dir, tmp_path / "run", dataset="arith", quantization_bit=None,
                       learning_rate=2e-2, max_steps=4)
    with caplog.at_level(logging.INFO, logger="tunesmith"):
        run = run_training(cfg).output_dir
        assert main(["export", str(run), f"export_dir={tmp_path / 'merged'}"]) == 0
    assert "loading a pre-quantized 4-bit bitsandbytes model" in caplog.text
    assert f"de-quantized the bitsandbytes base {bnb_checkpoint} to float32" in caplog.text
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.float32)
    assert not is_quantized(merged)
    assert "quantization_config" not in json.loads((tmp_path / "merged" / "config.json").read_text())
    served = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(bnb_checkpoint), run)  # as trained
    ids = torch.tensor([[5, 17, 40, 99, 3]])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, served(ids).logits, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("stage", ["dpo", "rm"])
def test_preference_stages_train_on_a_quantized_base(stage, qwen2_model, data_dir, tmp_path):
    """dpo's reference is the quantized base with the adapter off; rm's score head trains in full beside it."""
    from safetensors.torch import load_file

    cfg = build_config({k: (v, "t") for k, v in {
        "model_name_or_path": str(qwen2_model), "stage": stage, "finetuning_type": "lora", "dataset": "pairs",
        "dataset_dir": str(data_dir), "template": "qwen3_nothink", "cutoff_len": 64, "output_dir": str(tmp_path),
        "overwrite_output_dir": True, "per_device_train_batch_size": 2, "max_steps": 3, "save_strategy": "no",
        "report_to": "none", "disable_tqdm": True, "quantization_bit": 4, "learning_rate": 1e-3, "logging_steps": 1,
    }.items()})
    result = run_training(cfg)
    assert result.global_step == 3
    saved = load_file(tmp_path / "adapter_model.safetensors")
    assert any("lora_B" in k for k in saved)
    if stage == "rm":
        assert any("score" in k for k in saved)  # the head is not quantized: it trains and is saved
    assert all(r["loss"] == r["loss"] for r in read_log(tmp_path) if "loss" in r)


def test_hqq_serves_an_adapter_trained_on_bnb(qlora_run):
    from peft import PeftModel

    from tunesmith.infer.load import load_for_inference

    if importlib.util.find_spec("hqq") is None:
        pytest.skip("hqq is not installed")
    raw = {"model_name_or_path": str(qlora_run), "quantization_bit": 4, "quantization_method": "hqq"}
    loaded = load_for_inference(build_config({k: (v, "t") for k, v in raw.items()}, purpose="infer"), "cpu")
    assert isinstance(loaded.model, PeftModel)
    assert type(loaded.model.base_model.model.model.layers[0].mlp.down_proj.base_layer).__name__ == "HQQLinear"
    ids = loaded.tokenizer("1+1=", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.isfinite(loaded.model(input_ids=ids).logits).all()


def test_new_rows_only_on_a_quantized_base(qwen2_untied_model, marker_data, tmp_path):
    """train_new_tokens_only under QLoRA: a trainable-tokens adapter over the new rows; the quantized layers and
    every original row stay bit-identical."""
    snaps = Snapshots()
    cfg = qlora_config(qwen2_untied_model, marker_data, tmp_path / "out", add_extra_id_tokens=3,
                       train_new_tokens_only=True, max_steps=3, learning_rate=5e-2)
    run_training(cfg, extra_callbacks=[snaps])
    assert all(torch.equal(snaps.start[k], snaps.end[k]) for k in snaps.start)
    assert all(torch.equal(snaps.frozen[k], snaps.frozen_end[k]) for k in snaps.frozen)
    assert snaps.rows == []  # no whole embedding matrix trains: only the adapter's rows of the 3 new tokens
    assert any("embed_tokens" in n for n in snaps.frozen) and not any("lora_" in n for n in snaps.frozen)


def test_interrupted_qlora_run_resumes_with_the_same_losses(qwen2_model, data_dir, tmp_path):
    """Checkpoints hold the adapter and optimizer; the quantized base is rebuilt identically on resume."""
    def run(out, **kw):
        cfg = qlora_config(qwen2_model, data_dir, out, dataset="arith", max_steps=4, save_strategy="steps",
                           save_steps=2, overwrite_output_dir=False, learning_rate=2e-2, **kw)
        return run_training(cfg).output_dir

    straight = [r["loss"] for r in read_log(run(tmp_path / "a")) if "loss" in r]
    out = run(tmp_path / "b")
    for leftover in ("checkpoint-4", "tunesmith.json", "adapter_model.safetensors"):  # as if stopped after step 2
        shutil.rmtree(out / leftover) if (out / leftover).is_dir() else (out / leftover).unlink()
    (out / "trainer_log.jsonl").write_text("".join(line for line in (out / "trainer_log.jsonl").read_text()
                                                   .splitlines(keepends=True)[:2]))
    resumed = [r["loss"] for r in read_log(run(tmp_path / "b")) if "loss" in r]
    assert len(straight) == 4 and len(resumed) == 4  # the 2 kept lines + steps 3 and 4, trained from checkpoint-2
    assert resumed[-2:] == pytest.approx(straight[-2:], rel=1e-5)
