"""The sharding engines on CUDA (skipped without a GPU; the CPU suite proves them on gloo): LLaMA-Factory's ZeRO-3
and ZeRO-2-offload configs, unchanged, in bf16 on every visible GPU under torchrun (NCCL), logging the losses of
the same global batch trained without DeepSpeed; FSDP2 likewise where two or more GPUs are visible."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
DEEPSPEED = Path(__file__).resolve().parents[1] / "fixtures" / "llamafactory" / "deepspeed"
GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0
FSDP2 = {"fsdp": "full_shard auto_wrap",
         "fsdp_config": {"fsdp_version": 2, "transformer_layer_cls_to_wrap": ["Qwen2DecoderLayer"]}}


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="needs the `deepspeed` extra")
@pytest.mark.parametrize("config,method", [("ds_z3_config.json", "lora"), ("ds_z3_config.json", "full"),
                                           ("ds_z2_offload_config.json", "full")])
def test_deepspeed_on_the_gpus_logs_the_plain_run(config, method, dist, run_keys, tmp_path):
    keys = dict(finetuning_type=method, lora_target="all", bf16=True, max_steps=4)
    plain = dist.torchrun(run_keys(tmp_path / "plain", per_device_train_batch_size=8 // GPUS, **keys), GPUS)
    sharded = dist.torchrun(run_keys(tmp_path / "ds", per_device_train_batch_size=8 // GPUS,
                                     deepspeed=str(DEEPSPEED / config), **keys), GPUS)
    dist.same(plain, sharded, keys=("loss",), rel=2e-2)  # bf16


@pytest.mark.skipif(GPUS < 2, reason="FSDP2 across GPUs needs two or more")
@pytest.mark.parametrize("method", ["full", "lora"])
def test_fsdp2_across_gpus_logs_the_one_gpu_run(method, dist, run_keys, tmp_path):
    keys = dict(finetuning_type=method, lora_target="all", bf16=True, max_steps=4)
    one = dist.torchrun(run_keys(tmp_path / "one", per_device_train_batch_size=8, **keys), 1)
    many = dist.torchrun(run_keys(tmp_path / "many", per_device_train_batch_size=8 // GPUS, **keys, **FSDP2), GPUS)
    dist.same(one, many, keys=("loss",), rel=2e-2)
