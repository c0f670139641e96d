"""Launching several processes as LLaMA-Factory users do, and resuming their checkpoints: `FORCE_TORCHRUN=1
tunesmith train` on one machine and on two "nodes" (two launches with NNODES=2 and NODE_RANK 0/1 meeting at a
loopback rendezvous) log the one-process losses; a checkpoint written by two processes resumes on two and on one
with the uninterrupted trajectory."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="torchrun's loopback rendezvous, tested on Linux")

TRAIN = [sys.executable, "-m", "tunesmith.cli", "train"]


def test_force_torchrun_on_one_machine_and_on_two_nodes(dist, run_keys, tmp_path):
    one = dist.in_process(run_keys(tmp_path / "one", per_device_train_batch_size=8))
    keys = run_keys(tmp_path / "forced", per_device_train_batch_size=4)
    forced = subprocess.run([*TRAIN, str(dist.write_config(keys))], capture_output=True, text=True, timeout=300,
                            env=dist.env(FORCE_TORCHRUN="1", NPROC_PER_NODE="2"))
    dist.check(forced)
    dist.same(one, dist.logged(keys["output_dir"]), keys=("loss", "grad_norm"), rel=1e-4)

    keys = run_keys(tmp_path / "nodes", per_device_train_batch_size=4)
    cfg, port = str(dist.write_config(keys)), str(dist.free_port())
    nodes = [subprocess.Popen([*TRAIN, cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dist.env(FORCE_TORCHRUN="1", NNODES="2", NODE_RANK=str(rank), NPROC_PER_NODE="1",
                                           MASTER_ADDR="127.0.0.1", MASTER_PORT=port)) for rank in (0, 1)]
    for node in nodes:
        out, err = node.communicate(timeout=300)
        assert node.returncode == 0, err[-4000:]
    dist.same(one, dist.logged(keys["output_dir"]), keys=("loss", "grad_norm"), rel=1e-4)


def test_a_two_process_checkpoint_resumes_on_two_and_on_one(dist, run_keys, tmp_path):
    keys = dict(max_steps=4, save_strategy="steps", save_steps=2, lr_scheduler_type="cosine", warmup_steps=1)
    whole = dist.torchrun(run_keys(tmp_path / "whole", per_device_train_batch_size=4, **keys), 2)
    for name in ("on_two", "on_one"):
        (tmp_path / name).mkdir()
        shutil.copytree(tmp_path / "whole" / "checkpoint-2", tmp_path / name / "checkpoint-2")
    resumed = dict(keys, overwrite_output_dir=False)
    on_two = dist.torchrun(run_keys(tmp_path / "on_two", per_device_train_batch_size=4, **resumed), 2)
    on_one = dist.in_process(run_keys(tmp_path / "on_one", per_device_train_batch_size=8, **resumed))
    for run in (on_two, on_one):
        dist.same(whole[2:], run, keys=("loss", "grad_norm", "lr"), rel=1e-4)
