"""LLaMA-Factory's DeepSpeed examples as its users launch them: `FORCE_TORCHRUN=1 NPROC_PER_NODE=2 tunesmith train
<example>.yaml` from a folder laid out like its repository root (examples/deepspeed/ds_z3_config.json, the bundled
identity and alpaca_en_demo under data/), the YAML unchanged but for the model path. ZeRO-3 runs on the CPU with
gloo: the 2-process run logs the losses of the same config in one process without DeepSpeed."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "llamafactory"
pytestmark = [pytest.mark.skipif(sys.platform != "linux", reason="torchrun's loopback rendezvous, tested on Linux"),
              pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                                 reason="needs the `deepspeed` extra (pip install 'tunesmith[deepspeed]')")]


@pytest.mark.parametrize("example,output", [("qwen3_lora_sft_ds3.yaml", "saves/qwen3-4b/lora/sft"),
                                            ("train_full/qwen3_full_sft.yaml", "saves/qwen3-4b/full/sft")])
def test_llamafactory_zero3_example_under_force_torchrun(example, output, dist, qwen2_model, tmp_path):
    root = tmp_path / "llamafactory"
    (root / "examples").mkdir(parents=True)
    shutil.copytree(FIXTURES / "deepspeed", root / "examples" / "deepspeed")
    shutil.copytree(REPO / "data", root / "data")
    text = (FIXTURES / example).read_text().replace("MODEL_PATH", str(qwen2_model))
    # a short run: the first 12 examples of each dataset (LLaMA-Factory's own key), 3 epochs as published
    (root / "example.yaml").write_text(text.replace("max_samples: 1000", "max_samples: 12"))
    done = subprocess.run([sys.executable, "-m", "tunesmith.cli", "train", "example.yaml"], cwd=root,
                          capture_output=True, text=True, timeout=600,
                          env=dist.env(FORCE_TORCHRUN="1", NPROC_PER_NODE="2"))
    dist.check(done)
    card = json.loads((root / output / "tunesmith.json").read_text())
    # LLaMA-Factory's count: 2 x 12 examples / (batch 1 x 2 processes x accumulation 2) per step, 3 epochs
    assert card["examples"] == 24 and card["global_step"] == 6 * 3
    two = dist.logged(root / output)
    # the same config, one process with twice the accumulation, no DeepSpeed
    single = (root / "example.yaml").read_text().replace("deepspeed: examples/deepspeed/ds_z3_config.json", "") \
        .replace("gradient_accumulation_steps: 2", "gradient_accumulation_steps: 4") \
        .replace(f"output_dir: {output}", "output_dir: saves/single")
    (root / "single.yaml").write_text(single)
    dist.check(subprocess.run([sys.executable, "-m", "tunesmith.cli", "train", "single.yaml"], cwd=root,
                              capture_output=True, text=True, timeout=600, env=dist.env()))
    one = dist.logged(root / "saves/single")
    dist.same(one, two, keys=("loss",), rel=1e-4)
    saved = "adapter_model.safetensors" if "lora" in output else "model.safetensors"
    assert (root / output / saved).is_file()
