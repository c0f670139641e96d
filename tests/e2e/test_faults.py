"""kill -9 at each phase of a save, then the same command again: the run ends exactly where an uninterrupted run
ends, with every file in place. The kill is timed by replacing the function that starts the phase (in the
training process only), not by sleeps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tunesmith.train.callbacks.checkpoint_marker import checkpoints
from tunesmith.train.run import run_training

RUNNER = """
import json, os, sys
import importlib
settings, module, name = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
target = importlib.import_module(module)
def killed(*args, **kwargs):
    os._exit(137)  # as kill -9: no cleanup, no finally blocks
setattr(target, name, killed)
from tunesmith.config.load import build_config
from tunesmith.train.run import run_training
run_training(build_config({k: (v, "test") for k, v in settings.items()}))
"""

PHASES = {  # phase -> (module, function that starts it)
    "checkpoint written, not yet marked": ("tunesmith.train.callbacks.checkpoint_marker", "write_settings"),
    "checkpoint marked, older one not yet rotated out": ("tunesmith.train.callbacks.checkpoint_marker", "rotate"),
    "final model written, run card not yet": ("tunesmith.train.save", "write_run_card"),
}


def settings(qwen2_model, data_dir, out: Path) -> dict:
    return {"model_name_or_path": str(qwen2_model), "stage": "sft", "do_train": True, "finetuning_type": "full",
            "dataset": "arith", "dataset_dir": str(data_dir), "template": "qwen3_nothink", "cutoff_len": 128,
            "output_dir": str(out), "per_device_train_batch_size": 2, "learning_rate": 5e-3, "max_steps": 6,
            "logging_steps": 1, "save_strategy": "steps", "save_steps": 2, "save_total_limit": 1,
            "report_to": "none", "seed": 0, "disable_tqdm": True, "lr_scheduler_type": "linear"}


@pytest.fixture(scope="module")
def straight(qwen2_model, data_dir, tmp_path_factory):
    from tunesmith.config.load import build_config

    out = tmp_path_factory.mktemp("faults") / "straight"
    run_training(build_config({k: (v, "test") for k, v in settings(qwen2_model, data_dir, out).items()}))
    return out


@pytest.mark.parametrize("phase", list(PHASES))
def test_a_kill_at_any_phase_of_a_save_loses_nothing(phase, straight, qwen2_model, data_dir, tmp_path):
    from tunesmith.config.load import build_config

    out = tmp_path / "run"
    raw = settings(qwen2_model, data_dir, out)
    module, name = PHASES[phase]
    crash = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(raw), module, name], capture_output=True,
                           text=True, timeout=600)
    assert crash.returncode == 137, crash.stderr[-2000:]
    assert any(done for _, _, done in checkpoints(out)) or phase.startswith("checkpoint written")

    result = run_training(build_config({k: (v, "test") for k, v in raw.items()}))  # the same command again
    assert result.global_step == 6
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(out / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    card = json.loads((out / "tunesmith.json").read_text())
    assert card["global_step"] == 6 and (out / "tokenizer_config.json").exists()
    assert [(s, done) for s, _, done in checkpoints(out)] == [(6, True)]
