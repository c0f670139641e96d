"""The run plan: each decision from the config, the stage's declarations and the machine, before any model
loads; saved in tunesmith.json and logged as one block."""

from __future__ import annotations

import json
import logging

import pytest

from tunesmith.stages.registry import get_stage
from tunesmith.train.plan import make_plan


def plan_of(train_config, model, **overrides):
    cfg = train_config(model, **overrides)
    return make_plan(cfg, get_stage(cfg.stage))


def test_sft_is_padding_free_by_default_and_takes_the_chunked_loss(qwen2_model, train_config):
    plan = plan_of(train_config, qwen2_model)
    assert (plan.loop, plan.data_kind, plan.model_head) == ("trainer", "supervised", "lm")
    assert plan.batching == "padding-free" and not plan.pack and plan.packed_rows
    assert plan.loss == "chunked" and plan.reference is None
    # one row per batch: attention within each sequence (tunesmith_varlen), not over a mask of the whole row
    assert (plan.load_dtype, plan.autocast, plan.attention) == ("float32", None, "tunesmith_varlen")
    assert plan.sequence_boundaries
    for key in ("packing", "neat_packing"):  # LLaMA-Factory's meaning: rows of cutoff_len
        packed = plan_of(train_config, qwen2_model, **{key: True})
        assert packed.batching == "packed" and packed.pack and packed.packed_rows
    unpacked = plan_of(train_config, qwen2_model, packing=False)
    assert unpacked.batching == "padded" and not unpacked.pack and not unpacked.packed_rows
    assert unpacked.attention == packed.attention == "sdpa"  # on the CPU


def test_pt_rows_are_packed_by_construction(qwen2_model, train_config):
    plan = plan_of(train_config, qwen2_model, stage="pt", dataset="pt")
    assert plan.batching == "packed" and plan.packed_rows and not plan.pack and plan.data_kind == "text"


@pytest.mark.parametrize("method,reference", [("lora", "policy with adapters off"),
                                              ("full", "frozen copy of the starting model")])
def test_preference_stages_bring_their_loss_and_reference(method, reference, qwen2_model, train_config, caplog):
    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        plan = plan_of(train_config, qwen2_model, stage="dpo", dataset="pairs", finetuning_type=method, packing=True)
    assert plan.loss == "stage" and plan.reference == reference and not plan.pack
    assert "packing is not applied in stage dpo" in caplog.text
    assert plan_of(train_config, qwen2_model, stage="dpo", dataset="pairs", pref_loss="simpo").reference is None
    assert plan_of(train_config, qwen2_model, stage="dpo", dataset="pairs",
                   precompute_ref_log_probs=True).reference_precomputed


def test_reward_models_and_ppo(qwen2_model, train_config):
    rm = plan_of(train_config, qwen2_model, stage="rm", dataset="pairs")
    assert rm.model_head == "score" and rm.reference is None and rm.loss == "stage"
    ppo = plan_of(train_config, qwen2_model, stage="ppo", reward_model="http://127.0.0.1:9/x",
                  reward_model_type="api")
    assert ppo.loop == "rollout" and ppo.data_kind == "prompt" and ppo.reference is not None


@pytest.mark.parametrize("overrides,reason", [
    (dict(chunked_loss=False), "chunked_loss: false"),
    (dict(finetuning_type="lora", lora_target="q_proj,lm_head"), "LoRA adapter on the head"),
    (dict(finetuning_type="lora", train_new_tokens_only=True, add_special_tokens="<x>"), "trainable-token rows"),
])
def test_the_standard_loss_says_why(overrides, reason, qwen2_model, train_config):
    plan = plan_of(train_config, qwen2_model, **overrides)
    assert plan.loss == "standard" and reason in plan.loss_reason


def test_a_run_saves_and_logs_its_plan(qwen2_model, train_config, caplog):
    from tunesmith.train.run import run_training

    with caplog.at_level(logging.INFO, logger="tunesmith"):
        out = run_training(train_config(qwen2_model, max_steps=1)).output_dir
    saved = json.loads((out / "tunesmith.json").read_text())["plan"]
    assert saved == make_plan(train_config(qwen2_model, max_steps=1), get_stage("sft")).as_dict()
    assert caplog.text.count("run plan:") == 1 and "loss                      chunked" in caplog.text
