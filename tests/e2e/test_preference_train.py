"""rm, dpo and kto end to end on tiny models: step-0 identities, margins and accuracies that rise on a
small overfit set, the reference-model rules (and their memory), and a reward model that scores after
reload."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from tunesmith.config.errors import ConfigError
from tunesmith.train.callbacks.log_file import read_log
from tunesmith.train.run import run_training
from tunesmith.types import Conversation, Message

PREF = dict(stage="dpo", dataset="pairs", per_device_train_batch_size=4, learning_rate=1e-3)


def logs(out) -> list[dict]:
    return [r for r in read_log(out) if "loss" in r]


def card(out) -> dict:
    return json.loads((out / "tunesmith.json").read_text())


def early_late(rows: list[dict], key: str) -> tuple[float, float]:
    return (rows[0][key] + rows[1][key]) / 2, (rows[-1][key] + rows[-2][key]) / 2


@pytest.mark.parametrize("method", ["lora", "full"])
def test_dpo_starts_at_log2_with_zero_rewards(method, qwen2_model, train_config):
    out = run_training(train_config(qwen2_model, **PREF, finetuning_type=method, max_steps=1)).output_dir
    (first,) = logs(out)
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert first["rewards/chosen"] == 0.0 and first["rewards/rejected"] == 0.0 and first["rewards/margins"] == 0.0


@pytest.mark.parametrize("method", ["lora", "full"])
def test_dpo_margin_and_accuracy_rise_and_the_reference_follows_the_rules(method, qwen2_model, train_config):
    out = run_training(train_config(qwen2_model, **PREF, finetuning_type=method, plot_loss=True)).output_dir
    assert (out / "training_rewards.png").is_file() and (out / "training_loss.png").is_file()
    rows = logs(out)
    margin0, margin1 = early_late(rows, "rewards/margins")
    acc0, acc1 = early_late(rows, "rewards/accuracies")
    assert margin1 > margin0 + 0.1 and acc1 == 1.0 and acc1 >= acc0, rows
    assert early_late(rows, "loss")[1] < early_late(rows, "loss")[0]
    ref = card(out)["reference"]
    if method == "lora":  # adapters switched off serve as the reference: no second copy of the weights
        assert ref == {"kind": "policy with adapters off", "extra_parameter_bytes": 0, "precomputed": False}
    else:  # a frozen float32 copy of every weight of the starting model
        assert ref["kind"] == "frozen model" and ref["extra_parameter_bytes"] == 4 * card(out)["total_params"]


def test_precomputed_reference_trains_exactly_like_a_live_one(qwen2_model, train_config, tmp_path):
    live = run_training(train_config(qwen2_model, **PREF, finetuning_type="full", max_steps=4,
                                     output_dir=str(tmp_path / "live"))).output_dir
    pre = run_training(train_config(qwen2_model, **PREF, finetuning_type="full", max_steps=4,
                                    precompute_ref_log_probs=True, output_dir=str(tmp_path / "pre"))).output_dir
    assert [r["loss"] for r in logs(pre)] == pytest.approx([r["loss"] for r in logs(live)], abs=1e-5)
    assert card(pre)["reference"]["extra_parameter_bytes"] == 0  # released after scoring


def test_explicit_reference_model_is_used(qwen2_model, qwen2_untied_model, train_config, tmp_path):
    # the starting model loaded again as the reference: policy == reference at step 0
    same = run_training(train_config(qwen2_model, **PREF, finetuning_type="lora", max_steps=1,
                                     ref_model=str(qwen2_model), output_dir=str(tmp_path / "same"))).output_dir
    assert logs(same)[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert card(same)["reference"]["kind"] == "frozen model"  # an explicit reference wins over adapters-off
    assert card(same)["reference"]["extra_parameter_bytes"] > 0
    # another model (same tokenizer, other weights) as the reference: the rewards are not 0 at step 0
    other = run_training(train_config(qwen2_model, **PREF, finetuning_type="lora", max_steps=1,
                                      ref_model=str(qwen2_untied_model), output_dir=str(tmp_path / "other")))
    first = logs(other.output_dir)[0]
    assert first["rewards/chosen"] != 0.0 and first["loss"] != pytest.approx(math.log(2), abs=1e-3)
    with pytest.raises(ConfigError, match="embedding rows but the policy has"):
        run_training(train_config(qwen2_model, **PREF, finetuning_type="lora", max_steps=1,
                                  add_special_tokens="<tool>", resize_vocab_multiple=1024,
                                  ref_model=str(qwen2_model)))


@pytest.mark.parametrize("loss", ["orpo", "simpo"])
def test_reference_free_losses_need_no_reference(loss, qwen2_model, train_config):
    out = run_training(train_config(qwen2_model, **PREF, finetuning_type="full", pref_loss=loss)).output_dir
    rows = logs(out)
    assert card(out)["reference"] is None
    assert early_late(rows, "rewards/margins")[1] > early_late(rows, "rewards/margins")[0]
    assert early_late(rows, "loss")[1] < early_late(rows, "loss")[0]


def test_gradient_accumulation_equals_the_larger_batch(qwen2_model, train_config, tmp_path):
    # Adam divides by sqrt(v) + eps: with the default eps 1e-8 it turns rounding-level gradient differences
    # between the two batch layouts into weight differences of ~0.4% of a step; eps 1e-6 and a smaller step
    # keep them 12-50x under the tolerance (learning rate x2..x0.5), while the three steps move weights by 1.5e-3
    common = dict(PREF, finetuning_type="full", max_steps=3, disable_shuffling=True, learning_rate=5e-4,
                  adam_epsilon=1e-6)
    big = run_training(train_config(qwen2_model, **common, output_dir=str(tmp_path / "big"))).output_dir
    acc = run_training(train_config(qwen2_model, **{**common, "per_device_train_batch_size": 2},
                                    gradient_accumulation_steps=2, output_dir=str(tmp_path / "acc"))).output_dir
    a, b = load_file(str(big / "model.safetensors")), load_file(str(acc / "model.safetensors"))
    for name in a:
        assert torch.allclose(a[name], b[name], atol=2e-5), name
    assert [r["loss"] for r in logs(acc)] == pytest.approx([r["loss"] for r in logs(big)], abs=1e-5)


def test_kto_separates_desirable_from_undesirable(qwen2_model, train_config):
    out = run_training(train_config(qwen2_model, stage="kto", dataset="feedback", finetuning_type="full",
                                    learning_rate=1e-3, max_steps=16)).output_dir
    rows = logs(out)  # a batch of 4 may hold no undesirable (or no desirable) reply: average over windows
    mean = lambda rs, key: sum(r[key] for r in rs if key in r) / sum(1 for r in rs if key in r)  # noqa: E731
    gap = [mean(rs, "rewards/chosen") - mean(rs, "rewards/rejected") for rs in (rows[:4], rows[-4:])]
    assert gap[1] > gap[0] + 0.1, gap
    assert all("kl" in r for r in rows) and card(out)["reference"]["kind"] == "frozen model"


def test_special_token_freeze_holds_in_dpo(qwen2_model, train_config):
    out = run_training(train_config(qwen2_model, **PREF, finetuning_type="full", max_steps=3,
                                    add_extra_id_tokens=4, freeze_extra_id_steps=3, weight_decay=0.1)).output_dir
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    ids = tok.convert_tokens_to_ids([f"<extra_id_{i}>" for i in range(4)])
    trained = AutoModelForCausalLM.from_pretrained(out).get_input_embeddings().weight
    cfg = train_config(qwen2_model, **{**PREF, "learning_rate": 0.0}, finetuning_type="full", max_steps=1,
                       add_extra_id_tokens=4, output_dir=str(out.parent / "start"))
    start = AutoModelForCausalLM.from_pretrained(run_training(cfg).output_dir).get_input_embeddings().weight
    assert torch.equal(trained[ids], start[ids])  # bit-identical through the K frozen steps, decay included
    assert not torch.equal(trained[:100], start[:100])  # while ordinary rows trained


def conversations(data_dir) -> list[tuple[Conversation, Conversation]]:
    pairs = json.loads((data_dir / "pairs.json").read_text())
    ask = lambda p, side: Conversation((Message("user", p["conversations"][0]["value"]),  # noqa: E731
                                        Message("assistant", p[side]["value"])))
    return [(ask(p, "chosen"), ask(p, "rejected")) for p in pairs]


@pytest.mark.parametrize("method", ["lora", "full"])
def test_reward_model_learns_and_scores_after_reload(method, qwen2_model, train_config, data_dir):
    out = run_training(train_config(qwen2_model, stage="rm", dataset="pairs", finetuning_type=method,
                                    learning_rate=3e-3 if method == "lora" else 1e-3, val_size=2,
                                    eval_strategy="steps", eval_steps=12)).output_dir
    rows = logs(out)
    assert early_late(rows, "rewards/margins")[1] > early_late(rows, "rewards/margins")[0] + 0.5
    assert rows[-1]["rewards/accuracies"] == 1.0
    evals = [r for r in read_log(out) if "eval_rewards/accuracies" in r]
    assert evals and "eval_rewards/margins" in evals[-1]
    assert card(out)["model_head"] == "score"

    from tunesmith.train.rl.reward_model import RewardModel

    reward = RewardModel.load(out)
    pairs = conversations(data_dir)
    scores = reward.score([conv for pair in pairs for conv in pair])
    assert all(scores[2 * i] > scores[2 * i + 1] for i in range(len(pairs))), scores
    if method == "full":  # a plain transformers sequence-classification checkpoint, same score
        from transformers import AutoModelForSequenceClassification

        from tunesmith.cli import main

        assert main(["chat", str(out), "--query", "hi"]) == 2  # a reward model is refused as a chat model
        plain = AutoModelForSequenceClassification.from_pretrained(out).eval()
        text = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n2+2=4"
        ids = reward.tokenizer(text, return_tensors="pt").input_ids
        with torch.no_grad():
            assert plain(input_ids=ids).logits.item() == pytest.approx(reward.score_texts([text])[0], abs=1e-5)


BAD = [
    (dict(pref_loss="orpo", ref_model="m"), r"`ref_model` is set but `pref_loss: orpo` is reference-free"),
    (dict(ref_model_adapters="a"), r"`ref_model_adapters` needs `ref_model`"),
    (dict(pref_loss="ipo", dpo_label_smoothing=0.1), r"`dpo_label_smoothing` applies to `pref_loss: sigmoid` only"),
    (dict(stage="rm", token_loss_weights="<x>=2.0"), r"stage rm has none"),
    (dict(extra_id_loss_weight=2.0), r"set `pref_ftx` > 0"),
    (dict(pref_beta=0), r"`pref_beta` must be positive"),
    (dict(pref_loss="dpo"), r"pref_loss"),
    (dict(pref_bco_weight=0.5), r"BCO term of the DPO loss"),
]


@pytest.mark.parametrize("overrides,message", BAD)
def test_bad_preference_options_fail_clearly(overrides, message, qwen2_model, train_config):
    with pytest.raises(ConfigError, match=message):
        train_config(qwen2_model, **{**PREF, **overrides})
