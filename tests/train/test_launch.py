"""The launch convention of LLaMA-Factory's cli: FORCE_TORCHRUN=1 (or several CUDA devices) runs `tunesmith train`
again under torchrun with NNODES, NODE_RANK, NPROC_PER_NODE, MASTER_ADDR and MASTER_PORT; a process a launcher
started trains itself."""

from __future__ import annotations

import sys

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.train.launch import torchrun_command

ARGV = ["cfg.yaml", "learning_rate=1e-4"]


def test_nothing_to_launch_without_the_switch_or_several_devices():
    assert torchrun_command(ARGV, {}, device_count=0) is None
    assert torchrun_command(ARGV, {}, device_count=1) is None
    assert torchrun_command(ARGV, {"FORCE_TORCHRUN": "0"}, device_count=1) is None


def test_force_torchrun_reads_the_environment_as_llamafactory():
    env = {"FORCE_TORCHRUN": "1", "NNODES": "2", "NODE_RANK": "1", "NPROC_PER_NODE": "4", "MASTER_ADDR": "10.0.0.5",
           "MASTER_PORT": "29500"}
    assert torchrun_command(ARGV, env, device_count=0) == [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", "1", "--nproc-per-node", "4",
        "--master-addr", "10.0.0.5", "--master-port", "29500", "-m", "tunesmith.cli", "train", *ARGV]


def test_several_devices_launch_one_process_each_on_a_free_local_port():
    cmd = torchrun_command(ARGV, {}, device_count=8)
    assert cmd[cmd.index("--nproc-per-node") + 1] == "8"
    assert cmd[cmd.index("--nnodes") + 1] == "1" and cmd[cmd.index("--node-rank") + 1] == "0"
    assert cmd[cmd.index("--master-addr") + 1] == "127.0.0.1"
    assert 0 < int(cmd[cmd.index("--master-port") + 1]) < 65536
    forced_on_cpu = torchrun_command(ARGV, {"FORCE_TORCHRUN": "true"}, device_count=0)
    assert forced_on_cpu[forced_on_cpu.index("--nproc-per-node") + 1] == "1"


def test_a_process_a_launcher_started_is_not_launched_again():
    for marker in ({"LOCAL_RANK": "0"}, {"TORCHELASTIC_RUN_ID": "x"}, {"WORLD_SIZE": "2"}):
        assert torchrun_command(ARGV, {"FORCE_TORCHRUN": "1", **marker}, device_count=8) is None


def test_an_elastic_rendezvous_with_rdzv_id():
    env = {"FORCE_TORCHRUN": "1", "RDZV_ID": "job7", "MIN_NNODES": "1", "MAX_NNODES": "3", "MASTER_ADDR": "head",
           "MASTER_PORT": "29400", "MAX_RESTARTS": "2", "NPROC_PER_NODE": "2"}
    cmd = torchrun_command(ARGV, env, device_count=2)
    flags = cmd[3:cmd.index("-m", 3)]
    assert flags == ["--nnodes", "1:3", "--nproc-per-node", "2", "--rdzv-id", "job7", "--rdzv-backend", "c10d",
                     "--rdzv-endpoint", "head:29400", "--max-restarts", "2"]


@pytest.mark.parametrize("env,named", [({"NPROC_PER_NODE": "two"}, "NPROC_PER_NODE"), ({"NNODES": "0"}, "NNODES"),
                                       ({"MASTER_PORT": "-1"}, "MASTER_PORT"),
                                       ({"NNODES": "2", "NODE_RANK": "2"}, "NODE_RANK")])
def test_a_bad_variable_is_named(env, named):
    with pytest.raises(ConfigError, match=named):
        torchrun_command(ARGV, {"FORCE_TORCHRUN": "1", **env}, device_count=0)
