"""QLoRA on CUDA (skipped without a GPU): LLaMA-Factory's train_qlora examples in bf16 with the model placed on
the GPU by its device map, bf16 compute and storage of the 4-bit weights, the quantized bytes kept through
training; eetq (8 bit, needs `kernels`) and GPTQ export (needs gptqmodel + optimum) where installed."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from tunesmith.cli import main
from tunesmith.config.load import build_config
from tunesmith.model.quantize import quantized_state
from tunesmith.train.callbacks.log_file import read_log
from tunesmith.train.run import run_training

pytestmark = pytest.mark.gpu
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "llamafactory" / "train_qlora"


@pytest.mark.parametrize("name", ["qwen3_lora_sft_otfq.yaml", "qwen3_lora_sft_bnb_npu.yaml"])
def test_llamafactory_qlora_examples_run_in_bf16_on_the_gpu(name, qwen2_model, data_dir, tmp_path, monkeypatch):
    shutil.copytree(data_dir, tmp_path / "data")
    (tmp_path / name).write_text((FIXTURES / name).read_text().replace("MODEL_PATH", str(qwen2_model)))
    monkeypatch.chdir(tmp_path)
    assert main(["train", name, "max_steps=2", "logging_steps=1"]) == 0
    out = tmp_path / "saves/qwen3-4b/lora/sft"
    card = json.loads((out / "tunesmith.json").read_text())
    assert card["global_step"] == 2 and card["plan"]["load_dtype"] == "bfloat16"
    assert all(r["loss"] == r["loss"] for r in read_log(out) if "loss" in r)  # finite


def _config(model, data_dir, out, **kw):
    raw = {"model_name_or_path": str(model), "stage": "sft", "finetuning_type": "lora", "dataset": "arith",
           "dataset_dir": str(data_dir), "template": "qwen3_nothink", "cutoff_len": 64, "output_dir": str(out),
           "overwrite_output_dir": True, "per_device_train_batch_size": 4, "learning_rate": 2e-2, "max_steps": 6,
           "logging_steps": 1, "save_strategy": "no", "report_to": "none", "seed": 0, "disable_tqdm": True,
           "bf16": True, "lr_scheduler_type": "constant", "lora_rank": 4, **kw}
    return build_config({k: (v, "test") for k, v in raw.items()})


@pytest.mark.parametrize("overrides", [{"quantization_bit": 4}, {"quantization_bit": 8},
                                       {"quantization_bit": 4, "quantization_method": "hqq"},
                                       {"quantization_bit": 8, "quantization_method": "eetq"}])
def test_quantized_training_on_cuda_keeps_the_base_and_lowers_the_loss(overrides, qwen2_model, data_dir, tmp_path):
    from transformers import TrainerCallback

    method = overrides.get("quantization_method", "bnb")
    needed = {"bnb": "bitsandbytes", "hqq": "hqq", "eetq": "kernels"}[method]
    if importlib.util.find_spec(needed) is None:
        pytest.skip(f"{needed} is not installed")
    seen = {}

    class Keep(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            seen["start"] = quantized_state(model)
            seen["device"] = next(model.parameters()).device.type

        def on_train_end(self, args, state, control, model=None, **kwargs):
            seen["end"] = quantized_state(model)

    result = run_training(_config(qwen2_model, data_dir, tmp_path / "out", **overrides), extra_callbacks=[Keep()])
    assert seen["device"] == "cuda" and seen["start"]
    assert all(torch.equal(seen["start"][k], seen["end"][k]) for k in seen["start"])
    losses = [r["loss"] for r in read_log(result.output_dir) if "loss" in r]
    assert min(losses[-2:]) < losses[0] - 0.2


def test_gptq_export_where_installed(qwen2_model, data_dir, tmp_path):
    if importlib.util.find_spec("gptqmodel") is None or importlib.util.find_spec("optimum") is None:
        pytest.skip("gptqmodel and optimum are not installed")
    (tmp_path / "calib.txt").write_text("\n".join(f"note {i} rises to note {i + 1}, then rests." for i in range(64)))
    out = tmp_path / "gptq"
    assert main(["export", f"model_name_or_path={qwen2_model}", "template=qwen3_nothink", f"export_dir={out}",
                 "export_quantization_bit=4", f"export_quantization_dataset={tmp_path / 'calib.txt'}",
                 "export_quantization_nsamples=8", "export_quantization_maxlen=16"]) == 0
    assert json.loads((out / "config.json").read_text())["quantization_config"]["quant_method"] == "gptq"
