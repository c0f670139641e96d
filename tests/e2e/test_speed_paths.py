"""The speed options change nothing but speed: the chunked loss trains the same weights as the standard
loss (full, lora, weighted tokens, gradient accumulation); the varlen attention path gives the same logits
as the block-diagonal mask; the allocator and precision settings do what they say."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from tunesmith.train.callbacks.log_file import read_log
from tunesmith.train.run import run_training


def losses(out) -> list[float]:
    return [r["loss"] for r in read_log(out) if "loss" in r]


def trained_weights(out):
    from safetensors.torch import load_file

    files = sorted(p for p in out.iterdir() if p.suffix == ".safetensors")
    return {k: v for f in files for k, v in load_file(f).items()}


@pytest.mark.parametrize("extra", [
    dict(finetuning_type="full", packing=True),
    dict(finetuning_type="full"),  # the default padding-free batches
    dict(finetuning_type="full", gradient_accumulation_steps=2, per_device_train_batch_size=2, packing=False),
    dict(finetuning_type="lora", token_loss_weights={"<|im_end|>": 3.0}),
    dict(finetuning_type="lora", add_extra_id_tokens=2, extra_id_loss_weight=3.0),
], ids=["full-packed", "full-padding-free", "full-accumulated-padded", "lora-weighted-tokens", "lora-new-token-rows"])
def test_chunked_loss_trains_the_same_weights_as_the_standard_loss(qwen2_model, train_config, tmp_path, caplog,
                                                                   extra):
    runs = {}
    for chunked in (True, False):
        # LoRA with a weighted end-of-turn token spikes at a constant 1e-2: warm-up and decay keep the runs
        # smooth up to twice this rate
        cfg = train_config(qwen2_model, output_dir=str(tmp_path / str(chunked)), chunked_loss=chunked,
                           loss_chunk_size=5, max_steps=6, dataloader_num_workers=0, learning_rate=5e-3,
                           lr_scheduler_type="cosine", warmup_steps=1, **extra)
        with caplog.at_level(logging.INFO, logger="tunesmith"):
            runs[chunked] = run_training(cfg).output_dir
    assert "chunked_loss: not used" not in caplog.text
    logs = {k: [r for r in read_log(out) if "loss" in r] for k, out in runs.items()}
    assert len(logs[True]) == len(logs[False]) == 6 and logs[True][-1]["loss"] < logs[True][0]["loss"]
    for a, b in zip(logs[True], logs[False]):  # same loss and the same gradient norm at every step
        assert abs(a["loss"] - b["loss"]) < 1e-4 and abs(a["grad_norm"] - b["grad_norm"]) < 1e-4 * b["grad_norm"]
    wa, wb = trained_weights(runs[True]), trained_weights(runs[False])
    assert wa.keys() == wb.keys()
    for name in wa:  # Adam turns rounding-level gradient differences into weight differences of ~1e-5
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-3, atol=3e-4, msg=name)


def test_chunked_loss_reports_the_special_token_metrics(qwen2_model, train_config, tmp_path):
    out = run_training(train_config(qwen2_model, output_dir=str(tmp_path / "o"), add_extra_id_tokens=2,
                                    special_token_metrics=True, max_steps=3, dataloader_num_workers=0)).output_dir
    rows = [r for r in read_log(out) if "loss" in r]
    assert all("ordinary_loss" in r for r in rows)


def test_varlen_attention_equals_the_block_diagonal_mask(qwen2_model):
    from transformers import AutoModelForCausalLM

    from tunesmith.data.collate import Collator
    from tunesmith.model.attention import register_varlen

    items = [{"input_ids": [5, 6, 7, 8, 9, 10, 11], "labels": [-100] * 7, "position_ids": [0, 1, 2, 0, 1, 2, 3]},
             {"input_ids": [12, 13, 14], "labels": [-100] * 3, "position_ids": [0, 1, 2]}]
    masked = AutoModelForCausalLM.from_pretrained(qwen2_model, attn_implementation="sdpa", dtype=torch.float32)
    varlen = AutoModelForCausalLM.from_pretrained(qwen2_model, attn_implementation=register_varlen(),
                                                  dtype=torch.float32)
    plain = Collator(0)(items)
    bounded = Collator(0, boundaries=True)(items)
    assert bounded["cu_seq_lens_q"].tolist() == [0, 3, 7, 8, 11, 16]  # sequences + each row's padding
    assert bounded["max_length_q"] == 5
    assert Collator(0, width=13)(items)["input_ids"].shape == (2, 16)  # one shape for compiled layers
    with torch.no_grad():
        ref = masked(input_ids=plain["input_ids"], position_ids=plain["position_ids"], use_cache=False).logits
        got = varlen(**{k: v for k, v in bounded.items() if k != "labels"}).logits
        alone = masked(input_ids=torch.tensor([[8, 9, 10, 11]])).logits
    real = torch.tensor([[1] * 7 + [0], [1] * 3 + [0] * 5], dtype=torch.bool)
    torch.testing.assert_close(got[real], ref[real], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[0, 3:7], alone[0], rtol=1e-5, atol=1e-5)  # no attention across sequences


def test_training_with_varlen_attention_matches_sdpa(qwen2_model, train_config, tmp_path):
    runs = {attn: run_training(train_config(qwen2_model, output_dir=str(tmp_path / attn), flash_attn=attn,
                                            max_steps=3, dataloader_num_workers=0)).output_dir
            for attn in ("sdpa", "varlen")}
    a, b = losses(runs["sdpa"]), losses(runs["varlen"])
    assert len(a) == 3 and max(abs(x - y) for x, y in zip(a, b)) < 1e-4


def test_auto_attention_on_a_cpu_is_sdpa(caplog):
    from tunesmith.model.attention import VARLEN, choose_attention

    assert choose_attention("auto", packed=True) == "sdpa"
    with caplog.at_level(logging.INFO, logger="tunesmith"):
        assert choose_attention("varlen", packed=True) == VARLEN
    assert "one SDPA call per sequence" in caplog.text
    assert choose_attention("flex", packed=False) == "flex_attention"


def test_cuda_alloc_conf_is_set_unless_the_environment_has_one(monkeypatch, train_config, qwen2_model):
    from tunesmith.train.speed import allocator_settings

    monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF", raising=False)
    monkeypatch.delenv("PYTORCH_ALLOC_CONF", raising=False)
    allocator_settings(train_config(qwen2_model))
    assert os.environ["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:128")
    allocator_settings(train_config(qwen2_model, cuda_alloc_conf="expandable_segments:False"))
    assert os.environ["PYTORCH_CUDA_ALLOC_CONF"] == "max_split_size_mb:128"


def test_pure_bf16_on_a_cpu_falls_back_to_float32_with_one_warning(qwen2_model, train_config, caplog):
    from tunesmith.stages.registry import get_stage
    from tunesmith.train.plan import make_plan
    from tunesmith.train.setup import training_arguments

    cfg = train_config(qwen2_model, pure_bf16=True, bf16=True)
    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        plan = make_plan(cfg, get_stage("sft"))
    assert plan.load_dtype == "float32" and plan.autocast is None and plan.trainable_float32
    assert training_arguments(cfg, plan).bf16 is False
    assert caplog.text.count("requested but no CUDA GPU is available") == 1


@pytest.mark.parametrize("method", ["full", "lora"])
def test_compiled_layers_train_exactly_like_eager_ones(qwen2_model, train_config, tmp_path, caplog, method):
    runs = {}
    for compiled in (True, False):
        cfg = train_config(qwen2_model, output_dir=str(tmp_path / str(compiled)), compile_layers=compiled,
                           finetuning_type=method, flash_attn="varlen", max_steps=3, learning_rate=1e-3,
                           dataloader_num_workers=0)
        with caplog.at_level(logging.INFO, logger="tunesmith"):
            runs[compiled] = losses(run_training(cfg).output_dir)
    assert "compile_layers: 4 decoder layers compiled" in caplog.text
    assert max(abs(a - b) for a, b in zip(runs[True], runs[False])) < 1e-4


def test_gpu_batches_are_copied_without_blocking(monkeypatch):
    from tunesmith.train.speed import gpu_input_arguments

    assert gpu_input_arguments({}, 16, streaming=False) == {}  # this machine has no GPU: nothing changes
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert gpu_input_arguments({}, 16, streaming=False) == {
        "dataloader_num_workers": 2, "dataloader_persistent_workers": True,
        "accelerator_config": {"non_blocking": True}}
    kept = gpu_input_arguments({"dataloader_num_workers": 0, "accelerator_config": {"non_blocking": False}}, 16,
                               streaming=False)
    assert kept == {"accelerator_config": {"non_blocking": False}}  # what the user set wins
    assert "dataloader_num_workers" not in gpu_input_arguments({}, 16, streaming=True)
    assert gpu_input_arguments({"dataloader_pin_memory": False}, 1, False)["accelerator_config"] == {
        "non_blocking": False}


def test_layers_compile_by_default_only_for_packed_half_precision_gpu_training(monkeypatch, qwen2_model,
                                                                               train_config):
    from tunesmith.train.plan import layer_compilation

    assert not layer_compilation(train_config(qwen2_model), packed_half=True, cuda=False)  # no GPU
    assert layer_compilation(train_config(qwen2_model), packed_half=True, cuda=True)
    assert not layer_compilation(train_config(qwen2_model), packed_half=False, cuda=True)
    assert not layer_compilation(train_config(qwen2_model, compile_layers=False), packed_half=True, cuda=True)
    assert not layer_compilation(train_config(qwen2_model, torch_compile=True), packed_half=True, cuda=True)
    assert not layer_compilation(train_config(qwen2_model, disable_gradient_checkpointing=False), packed_half=True,
                                 cuda=True)
    assert layer_compilation(train_config(qwen2_model, compile_layers=True), packed_half=False, cuda=True)


def test_a_compile_failure_says_how_to_train_eagerly(qwen2_model, train_config, monkeypatch):
    from torch._dynamo.exc import BackendCompilerFailed

    from tunesmith.config.errors import ConfigError
    from tunesmith.train import trainer as trainer_module

    def broken(self, *args, **kwargs):
        raise BackendCompilerFailed(lambda *a: None, RuntimeError("triton is missing"), None)

    monkeypatch.setattr(trainer_module.TunesmithTrainer, "train", broken)
    with pytest.raises(ConfigError, match="set `compile_layers: false`"):
        run_training(train_config(qwen2_model, compile_layers=True, max_steps=1))
    monkeypatch.setattr(trainer_module.TunesmithTrainer, "train", lambda self, **kw: (_ for _ in ()).throw(
        RuntimeError("out of memory")))
    with pytest.raises(RuntimeError, match="out of memory"):  # other errors pass through unchanged
        run_training(train_config(qwen2_model, compile_layers=True, max_steps=1))


def test_llamafactory_liger_switch_runs_on_tunesmiths_own_paths(qwen2_model, train_config, tmp_path, caplog):
    import sys

    with caplog.at_level(logging.INFO, logger="tunesmith"):
        run_training(train_config(qwen2_model, enable_liger_kernel=True, max_steps=1, dataloader_num_workers=0))
    assert "enable_liger_kernel: tunesmith's chunked loss" in caplog.text
    assert "chunked_loss: not used" not in caplog.text
    assert "liger_kernel" not in sys.modules
