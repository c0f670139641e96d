"""Sharding engines on the CPU (gloo, 2 processes): transformers' FSDP2 (`fsdp` / `fsdp_config`) for full and LoRA
sft, and DeepSpeed ZeRO-3 from LLaMA-Factory's examples/deepspeed/ds_z3_config.json, unchanged, in the shape of its
train_lora/qwen3_lora_sft_ds3.yaml (tiny model and data), log the one-process losses."""

from __future__ import annotations

import importlib.util
import sys

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="torchrun's loopback rendezvous, tested on Linux")

# LLaMA-Factory's examples/deepspeed/ds_z3_config.json, verbatim
DS_Z3_CONFIG = """{
  "train_batch_size": "auto",
  "train_micro_batch_size_per_gpu": "auto",
  "gradient_accumulation_steps": "auto",
  "gradient_clipping": "auto",
  "zero_allow_untested_optimizer": true,
  "fp16": {
    "enabled": "auto",
    "loss_scale": 0,
    "loss_scale_window": 1000,
    "initial_scale_power": 16,
    "hysteresis": 2,
    "min_loss_scale": 1
  },
  "bf16": {
    "enabled": "auto"
  },
  "zero_optimization": {
    "stage": 3,
    "overlap_comm": false,
    "contiguous_gradients": true,
    "sub_group_size": 1e9,
    "reduce_bucket_size": "auto",
    "stage3_prefetch_bucket_size": "auto",
    "stage3_param_persistence_threshold": "auto",
    "stage3_max_live_parameters": 1e9,
    "stage3_max_reuse_distance": 1e9,
    "stage3_gather_16bit_weights_on_model_save": true
  }
}
"""
FSDP2 = {"fsdp": "full_shard auto_wrap",
         "fsdp_config": {"fsdp_version": 2, "transformer_layer_cls_to_wrap": ["Qwen2DecoderLayer"]}}


@pytest.mark.parametrize("method", ["full", "lora"])
def test_fsdp2_logs_the_one_process_losses(dist, run_keys, tmp_path, method):
    keys = dict(finetuning_type=method, lora_target="all", gradient_accumulation_steps=2)
    one = dist.in_process(run_keys(tmp_path / "one", per_device_train_batch_size=4, **keys))
    two = dist.torchrun(run_keys(tmp_path / "two", per_device_train_batch_size=2, **keys, **FSDP2), 2)
    dist.same(one, two, keys=("loss", "grad_norm"), rel=1e-4)
    assert (tmp_path / "two" / ("adapter_model.safetensors" if method == "lora" else "model.safetensors")).is_file()


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="the `deepspeed` extra is not installed")
def test_llamafactory_lora_sft_ds3_shape_under_zero3(dist, run_keys, tmp_path):
    ds_config = tmp_path / "ds_z3_config.json"
    ds_config.write_text(DS_Z3_CONFIG)
    # train_lora/qwen3_lora_sft_ds3.yaml's keys (model, data and lengths made tiny)
    keys = dict(finetuning_type="lora", lora_rank=8, lora_target="all", plot_loss=True, save_only_model=False,
                gradient_accumulation_steps=2, learning_rate=1.0e-4, num_train_epochs=3.0, lr_scheduler_type="cosine",
                warmup_ratio=0.1, bf16=True, ddp_timeout=180000000, resume_from_checkpoint=None)
    one = dist.in_process(run_keys(tmp_path / "one", per_device_train_batch_size=4, **keys))
    two = dist.torchrun(run_keys(tmp_path / "two", per_device_train_batch_size=2, deepspeed=str(ds_config), **keys), 2)
    dist.same(one, two, keys=("loss", "grad_norm"), rel=1e-4)
    assert (tmp_path / "two" / "adapter_model.safetensors").is_file()
