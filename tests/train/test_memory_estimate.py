"""Model-state memory per GPU from the model's shape, against numbers worked out by hand (docs/scaling.md)."""

from __future__ import annotations

import pytest

from tunesmith.train.memory_estimate import LLAMA2_7B, LLAMA2_70B, model_state_bytes


def test_parameter_counts_of_llama2_7b_and_70b():
    # 7B: 2 x 32000 x 4096 embeddings + 32 x (4 x 4096^2 + 3 x 4096 x 11008 + 2 x 4096) + 4096
    assert LLAMA2_7B.layer_parameters() == 202_383_360
    assert LLAMA2_7B.parameters() == 6_738_415_616
    # 70B: grouped-query attention (8 kv heads of 128): 2 x 8192^2 + 2 x 8192 x 1024 per layer for attention
    assert LLAMA2_70B.layer_parameters() == 855_654_400
    assert LLAMA2_70B.parameters() == 68_976_648_192
    # LoRA r=8 on the 7 linear layers: 32 x 8 x (4 x 8192 + 3 x 15104)
    assert LLAMA2_7B.lora_parameters(8) == 19_988_480


def test_bytes_per_gpu_under_each_engine():
    p, layer = 6_738_415_616, 202_383_360
    assert model_state_bytes(LLAMA2_7B, "ddp", 8) == 16 * p == 107_814_649_856
    assert model_state_bytes(LLAMA2_7B, "zero2", 8) == 2 * p + 14 * p // 8 == 25_269_058_560
    assert model_state_bytes(LLAMA2_7B, "zero2_offload", 8) == 2 * p
    assert model_state_bytes(LLAMA2_7B, "zero3", 8) == 16 * p // 8 + 2 * layer == 13_881_597_952
    assert model_state_bytes(LLAMA2_7B, "fsdp2", 8) == model_state_bytes(LLAMA2_7B, "zero3", 8)
    assert model_state_bytes(LLAMA2_7B, "zero3_offload", 8) == 2 * layer
    assert model_state_bytes(LLAMA2_7B, "ddp", 1, lora_rank=8) == 2 * p + 16 * 19_988_480 == 13_796_646_912
    assert model_state_bytes(LLAMA2_70B, "zero3", 16) == 68_976_648_192 + 2 * 855_654_400 == 70_687_956_992


def test_unknown_engine_or_no_gpu_is_refused():
    with pytest.raises(ValueError, match="engine 'zero4'"):
        model_state_bytes(LLAMA2_7B, "zero4", 8)
    with pytest.raises(ValueError, match="gpus"):
        model_state_bytes(LLAMA2_7B, "ddp", 0)
