"""Processes started by torchrun on a machine without CUDA train together (gloo), not each alone: two processes
with half the per-device batch log the one-process run's losses for the same global batch (sft with grad norms,
special-token metrics, per-token loss weights and sequential phases; pt, dpo, rm, kto), keep the gated rows
bit-identical on every rank, and write the log once; a rollout stage (grpo) logs each step once too."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="torchrun's loopback rendezvous, tested on Linux")

# each rank writes, after every optimizer step, digests of its whole embedding matrix and of the <extra_id_N> rows
DIGEST_SCRIPT = '''
import hashlib, json, os, sys
from transformers import TrainerCallback
from tunesmith.config.load import load_config
from tunesmith.train.run import run_training

class RowDigests(TrainerCallback):
    def __init__(self):
        self.seen = []
    def record(self, model, tokenizer, step):
        weight = model.get_input_embeddings().weight.detach()
        ids = tokenizer.convert_tokens_to_ids([f"<extra_id_{i}>" for i in range(3)])
        self.seen.append({"step": step, "all": hashlib.sha256(weight.numpy().tobytes()).hexdigest(),
                          "extra_id": hashlib.sha256(weight[ids].numpy().tobytes()).hexdigest()})
    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kw):
        self.record(model, processing_class, 0)
    def on_step_end(self, args, state, control, model=None, processing_class=None, **kw):
        self.record(model, processing_class, state.global_step)
    def on_train_end(self, args, state, control, **kw):
        path = os.path.join(args.output_dir, "digests_rank%s.json" % os.environ["RANK"])
        with open(path, "w") as f:
            json.dump(self.seen, f)

run_training(load_config(sys.argv[1:]), extra_callbacks=[RowDigests()])
'''


@pytest.fixture()
def marks_and_arith(data_dir, tmp_path) -> Path:
    """Two datasets trained one after the other (`mix_strategy: sequential`): arithmetic, then replies with
    <extra_id_N> markers (special-token targets)."""
    root = tmp_path / "data"
    root.mkdir()
    rows = [{"instruction": f"mark {i}", "input": "", "output": f"<extra_id_{i % 3}> item {i} <extra_id_{(i + 1) % 3}>"}
            for i in range(8)]
    (root / "marks.json").write_text(json.dumps(rows))
    (root / "arith.json").write_text((data_dir / "arith.json").read_text())
    info = {"arith": {"file_name": "arith.json"}, "marks": {"file_name": "marks.json"}}
    (root / "dataset_info.json").write_text(json.dumps(info))
    return root


def test_sft_with_added_tokens_phases_and_weights_logs_the_one_process_run(dist, run_keys, marks_and_arith,
                                                                           tmp_path):
    keys = dict(dataset="arith,marks", dataset_dir=str(marks_and_arith), mix_strategy="sequential",
                add_extra_id_tokens=3, extra_id_loss_weight=0.5, freeze_extra_id_steps=2, max_steps=4)
    one = dist.in_process(run_keys(tmp_path / "one", per_device_train_batch_size=8, **keys))
    script = tmp_path / "digests.py"
    script.write_text(DIGEST_SCRIPT)
    two = dist.torchrun(run_keys(tmp_path / "two", per_device_train_batch_size=4, **keys), 2, script=script)
    dist.same(one, two, keys=("loss", "grad_norm"), rel=1e-4)
    # special-token metrics over both processes' tokens: arithmetic first (no special targets), then the markers
    assert ["special_loss" in r for r in two] == [False, True, False, True]
    for a, b in zip(one, two):
        assert {k for k in a if k.startswith(("special", "ordinary"))} == {k for k in b if k.startswith(("special",
                                                                                                          "ordinary"))}
        for key in ("special_loss", "special_acc", "ordinary_loss"):
            if key in a:
                assert b[key] == pytest.approx(a[key], abs=2e-4), (key, a["current_steps"])
    ranks = [json.loads((tmp_path / "two" / f"digests_rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]  # every rank holds bit-identical embeddings after every step
    extra = [d["extra_id"] for d in ranks[0]]
    assert extra[0] == extra[1] == extra[2] != extra[4]  # frozen for two steps, then trained
    assert (tmp_path / "two" / "trainer_log.jsonl").read_text().count('"current_steps": 1,') == 1


@pytest.mark.parametrize("stage,dataset,method", [("pt", "pt", "full"), ("dpo", "pairs", "lora"),
                                                  ("rm", "pairs", "lora"), ("kto", "feedback", "lora")])
def test_each_trainer_stage_logs_the_one_process_losses(dist, run_keys, tmp_path, stage, dataset, method):
    keys = dict(stage=stage, dataset=dataset, finetuning_type=method, cutoff_len=32 if stage == "pt" else 128)
    one = dist.in_process(run_keys(tmp_path / "one", per_device_train_batch_size=4, **keys))
    two = dist.torchrun(run_keys(tmp_path / "two", per_device_train_batch_size=2, **keys), 2)
    dist.same(one, two)


@pytest.mark.parametrize("layout", ["packed", "token_budget"])
def test_sft_batch_layouts_log_the_one_process_losses(dist, run_keys, tmp_path, layout):
    """Packed rows (per-device rows halve), and token-budget micro-batches (each process takes every other
    micro-batch: one process accumulates two for the same step)."""
    if layout == "packed":
        keys, one_keys, two_keys = dict(packing=True, cutoff_len=48), dict(per_device_train_batch_size=4), \
            dict(per_device_train_batch_size=2)
    else:
        keys, one_keys, two_keys = dict(max_tokens_per_batch=128, cutoff_len=64), \
            dict(gradient_accumulation_steps=2), {}
    one = dist.in_process(run_keys(tmp_path / "one", **keys, **one_keys))
    two = dist.torchrun(run_keys(tmp_path / "two", **keys, **two_keys), 2)
    dist.same(one, two, keys=("loss", "grad_norm"), rel=1e-4)


@pytest.mark.parametrize("stage", ["grpo", "ppo"])
def test_rollout_stages_join_the_processes_too(dist, run_keys, tmp_path, qwen2_model, stage):
    """Each process generates its own rollouts (as TRL's trainers do): not compared with one process, but every
    step is taken together and logged once."""
    keys = dict(reward_funcs="format", num_generations=4, max_completion_length=4) if stage == "grpo" else \
        dict(reward_model=str(qwen2_model), reward_model_type="full", max_new_tokens=4)
    rows = dist.torchrun(run_keys(tmp_path / stage, stage=stage, finetuning_type="lora", per_device_train_batch_size=4,
                                  max_steps=2, **keys), 2)
    assert [r["current_steps"] for r in rows] == [1, 2]
