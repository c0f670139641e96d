"""Runs for the several-process tests: the same training keys in this process (one process) or under torchrun
(several processes of one gloo group on the CPU), each returning the logged training steps."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def logged_steps(output_dir) -> list[dict]:
    lines = (Path(output_dir) / "trainer_log.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if '"loss"' in line]


def process_env(**extra) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **extra}


def write_config(keys: dict) -> Path:
    path = Path(keys["output_dir"]).with_suffix(".yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(keys))
    return path


def check(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, (done.stdout or "")[-2000:] + (done.stderr or "")[-4000:]


@pytest.fixture()
def run_keys(data_dir, qwen2_model):
    """Small sft keys on the tiny Qwen2 model; overrides by keyword."""

    def make(out: Path, **keys) -> dict:
        return {"model_name_or_path": str(qwen2_model), "stage": "sft", "do_train": True, "finetuning_type": "full",
                "dataset": "arith", "dataset_dir": str(data_dir), "template": "qwen3_nothink", "cutoff_len": 128,
                "output_dir": str(out), "overwrite_output_dir": True, "learning_rate": 1e-3, "max_steps": 3,
                "logging_steps": 1, "save_strategy": "no", "report_to": "none", "seed": 0, "disable_tqdm": True,
                **keys}

    return make


def in_process(keys: dict, callbacks: list | None = None) -> list[dict]:
    """One process, no launcher: the reference the several-process runs are compared with."""
    from tunesmith.config.load import build_config
    from tunesmith.train.run import run_training

    run_training(build_config({k: (v, "test") for k, v in keys.items()}), extra_callbacks=callbacks)
    return logged_steps(keys["output_dir"])


def torchrun(keys: dict, processes: int, script: Path | None = None, timeout: int = 300, **env) -> list[dict]:
    """``processes`` processes on this machine under torchrun's loopback rendezvous, running `tunesmith train`
    (or ``script`` with the config's path)."""
    target = [str(script)] if script else ["-m", "tunesmith.cli", "train"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes), "--master-addr",
           "127.0.0.1", "--master-port", str(free_port()), *target, str(write_config(keys))]
    check(subprocess.run(cmd, capture_output=True, text=True, env=process_env(**env), timeout=timeout))
    return logged_steps(keys["output_dir"])


def assert_same_steps(one: list[dict], many: list[dict], keys=("loss",), rel: float = 1e-5) -> None:
    assert [r["current_steps"] for r in many] == [r["current_steps"] for r in one]  # each step logged once
    for a, b in zip(one, many):
        for key in keys:
            assert b[key] == pytest.approx(a[key], rel=rel), (key, a["current_steps"])


@pytest.fixture()
def dist():
    """The helpers above, for the tests (conftest modules are not imported by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(in_process=in_process, torchrun=torchrun, same=assert_same_steps, free_port=free_port,
                           env=process_env, write_config=write_config, logged=logged_steps, check=check)
