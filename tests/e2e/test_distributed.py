"""Processes started by torchrun on a machine without CUDA train together (gloo), not each alone: two
processes with half the per-device batch log the one-process run's losses (sft with grad norms, dpo, rm) and
write the log once; a rollout stage (grpo) logs each step once too."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="torchrun's loopback rendezvous, tested on Linux")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(tmp: Path, processes: int, **keys) -> list[dict]:
    cfg = tmp / f"run{processes}.yaml"
    cfg.write_text(yaml.safe_dump(keys))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_addr",
           "127.0.0.1", "--master_port", str(free_port()), "-m", "tunesmith.cli", "train", str(cfg)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = (Path(keys["output_dir"]) / "trainer_log.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if '"loss"' in line]


def base(model, data_dir, out: Path, **keys) -> dict:
    return {"model_name_or_path": str(model), "stage": "sft", "do_train": True, "finetuning_type": "full",
            "dataset": "arith", "dataset_dir": str(data_dir), "template": "qwen3_nothink", "cutoff_len": 128,
            "output_dir": str(out), "overwrite_output_dir": True, "learning_rate": 1e-3, "max_steps": 3,
            "logging_steps": 1, "save_strategy": "no", "report_to": "none", "seed": 0, "disable_tqdm": True,
            **keys}


def test_two_cpu_processes_log_the_one_process_losses(qwen2_model, data_dir, tmp_path):
    one = torchrun(tmp_path, 1, **base(qwen2_model, data_dir, tmp_path / "one", per_device_train_batch_size=8))
    two = torchrun(tmp_path, 2, **base(qwen2_model, data_dir, tmp_path / "two", per_device_train_batch_size=4))
    assert [r["current_steps"] for r in two] == [1, 2, 3]  # written once, by the first process
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)


# kto: its KL pairs are formed when the data is encoded and z0 is averaged over every process (stages/kto.py)
@pytest.mark.parametrize("stage,dataset", [("dpo", "pairs"), ("rm", "pairs"), ("kto", "feedback")])
def test_preference_stages_log_the_one_process_losses(qwen2_model, data_dir, tmp_path, stage, dataset):
    keys = dict(stage=stage, dataset=dataset, finetuning_type="lora", learning_rate=1e-3)
    one = torchrun(tmp_path, 1, **base(qwen2_model, data_dir, tmp_path / "one", per_device_train_batch_size=4, **keys))
    two = torchrun(tmp_path, 2, **base(qwen2_model, data_dir, tmp_path / "two", per_device_train_batch_size=2, **keys))
    assert [r["current_steps"] for r in two] == [1, 2, 3]
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)


def test_a_rollout_stage_joins_the_processes_too(qwen2_model, data_dir, tmp_path):
    rows = torchrun(tmp_path, 2, **base(qwen2_model, data_dir, tmp_path / "grpo", stage="grpo",
                                       finetuning_type="lora", reward_funcs="format", num_generations=4,
                                       per_device_train_batch_size=4, max_completion_length=4, max_steps=2))
    assert [r["current_steps"] for r in rows] == [1, 2]
