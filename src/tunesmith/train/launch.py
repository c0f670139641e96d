"""`tunesmith train` on several processes, launched as LLaMA-Factory's cli launches them: with FORCE_TORCHRUN=1,
or when more than one CUDA device is visible, the command runs itself again under torchrun (the entry point of
``torch.distributed.run``, from this Python) with the environment's NNODES, NODE_RANK, NPROC_PER_NODE,
MASTER_ADDR and MASTER_PORT; with RDZV_ID set, an elastic c10d rendezvous (MIN_NNODES, MAX_NNODES,
MAX_RESTARTS). A process that torchrun, accelerate or deepspeed already started trains itself (no relaunch).
torchrun starts the processes and sets up their group; tunesmith never does."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Mapping

from ..config.errors import ConfigError

logger = logging.getLogger(__name__)

# what every launcher sets for the processes it starts
LAUNCHED_MARKERS = ("LOCAL_RANK", "TORCHELASTIC_RUN_ID")


def enabled(env: Mapping[str, str], name: str) -> bool:
    """LLaMA-Factory's reading of a switch: true, y or 1 (any case)."""
    return env.get(name, "0").lower() in ("true", "y", "1")


def already_launched(env: Mapping[str, str]) -> bool:
    return any(key in env for key in LAUNCHED_MARKERS) or int(env.get("WORLD_SIZE", "1") or 1) > 1


def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def _count(env: Mapping[str, str], name: str, default: str, least: int = 1) -> str:
    value = env.get(name) or default
    if not value.isdigit() or int(value) < least:
        raise ConfigError(f"environment variable {name}={value!r}: expected a whole number of at least {least}")
    return value


def torchrun_command(argv: list[str], env: Mapping[str, str], device_count: int) -> list[str] | None:
    """The torchrun command that runs ``tunesmith train argv`` on every process, or None to train in this
    process (already launched; or neither FORCE_TORCHRUN nor several CUDA devices)."""
    if already_launched(env) or not (enabled(env, "FORCE_TORCHRUN") or device_count > 1):
        return None
    nnodes = _count(env, "NNODES", "1")
    node_rank = _count(env, "NODE_RANK", "0", least=0)
    nproc = _count(env, "NPROC_PER_NODE", str(max(device_count, 1)))
    if int(node_rank) >= int(nnodes):
        raise ConfigError(f"NODE_RANK={node_rank} with NNODES={nnodes}: node ranks run from 0 to {int(nnodes) - 1}")
    addr = env.get("MASTER_ADDR") or "127.0.0.1"
    port = _count(env, "MASTER_PORT", str(free_port()))
    cmd = [sys.executable, "-m", "torch.distributed.run"]
    if rdzv_id := env.get("RDZV_ID"):
        low, high = env.get("MIN_NNODES"), env.get("MAX_NNODES")
        cmd += ["--nnodes", f"{low}:{high}" if low and high else nnodes, "--nproc-per-node", nproc,
                "--rdzv-id", rdzv_id, "--rdzv-backend", "c10d", "--rdzv-endpoint", f"{addr}:{port}",
                "--max-restarts", _count(env, "MAX_RESTARTS", "0", least=0)]
    else:
        cmd += ["--nnodes", nnodes, "--node-rank", node_rank, "--nproc-per-node", nproc, "--master-addr", addr,
                "--master-port", port]
    return [*cmd, "-m", "tunesmith.cli", "train", *argv]


def relaunch(argv: list[str]) -> int | None:
    """Run ``tunesmith train argv`` under torchrun when the environment asks for it; its exit status, or None
    when this process is to train itself."""
    env = dict(os.environ)
    forced = enabled(env, "FORCE_TORCHRUN")
    count = 0 if already_launched(env) else cuda_device_count()
    cmd = torchrun_command(argv, env, count)
    if cmd is None:
        return None
    if enabled(env, "OPTIM_TORCH") or "OPTIM_TORCH" not in env:  # as LLaMA-Factory: lighter NCCL streams
        env.setdefault("TORCH_NCCL_AVOID_RECORD_STREAMS", "1")
    nnodes = cmd[cmd.index("--nnodes") + 1]
    logger.info("%s: %s process(es) per node on %s node(s), rendezvous at %s", "FORCE_TORCHRUN" if forced else
                f"{count} CUDA devices", cmd[cmd.index("--nproc-per-node") + 1], nnodes,
                env.get("MASTER_ADDR") or "127.0.0.1")
    return subprocess.run(cmd, env=env, check=False).returncode
