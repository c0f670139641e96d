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


ACCELERATE_FSDP2 = """compute_environment: LOCAL_MACHINE
distributed_type: FSDP
fsdp_config:
  fsdp_version: 2
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_transformer_layer_cls_to_wrap: Qwen2DecoderLayer
  fsdp_state_dict_type: FULL_STATE_DICT
  fsdp_reshard_after_forward: true
  fsdp_cpu_ram_efficient_loading: false
num_processes: 2
num_machines: 1
machine_rank: 0
mixed_precision: 'no'
use_cpu: true
main_process_ip: 127.0.0.1
main_process_port: {port}
"""


def test_accelerate_launch_with_an_fsdp2_config_logs_the_one_process_losses(dist, run_keys, tmp_path):
    """`accelerate launch --config_file fsdp2.yaml -m tunesmith.cli train cfg.yaml`: accelerate's own launcher and
    its FSDP2 settings, no tunesmith key about sharding."""
    import subprocess

    one = dist.in_process(run_keys(tmp_path / "one", per_device_train_batch_size=4))
    keys = run_keys(tmp_path / "two", per_device_train_batch_size=2)
    accelerate_config = tmp_path / "fsdp2.yaml"
    accelerate_config.write_text(ACCELERATE_FSDP2.format(port=dist.free_port()))
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config)]
    dist.check(subprocess.run([*launcher, "-m", "tunesmith.cli", "train", str(dist.write_config(keys))],
                              capture_output=True, text=True, timeout=300, env=dist.env()))
    dist.same(one, dist.logged(keys["output_dir"]), keys=("loss", "grad_norm"), rel=1e-4)
