"""Shared-prompt rows (one prompt, several replies in one row) give the log-probs and scores of separate rows."""

import pytest
import torch

from tunesmith.stages.preference.shared_prompt import (last_positions, pack_shared, reply_logits_and_labels,
                                                      reply_token_logps, shared_attention_mask, shared_forward)


def tiny_lm(family="qwen2", head="lm"):
    from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification, LlamaConfig,
                              Qwen2Config)

    torch.manual_seed(0)
    cls = Qwen2Config if family == "qwen2" else LlamaConfig
    config = cls(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=128, pad_token_id=0, num_labels=1,
                 attn_implementation="sdpa")
    auto = AutoModelForCausalLM if head == "lm" else AutoModelForSequenceClassification
    return auto.from_config(config).eval()


def separate_logps(model, prompt, reply):
    ids = torch.tensor([prompt + reply])
    logits = model(input_ids=ids).logits[0].float()
    logps = logits.log_softmax(-1)
    return torch.stack([logps[len(prompt) - 1 + t, reply[t]] for t in range(len(reply))])


PROMPTS = [[5, 6, 7, 8, 9], [11, 12, 13]]
REPLIES = [[[20, 21, 22], [30, 31], [40, 41, 42, 43]], [[50], [60, 61, 62, 63, 64, 65]]]


def test_mask_lets_each_reply_see_the_prompt_and_itself_only():
    batch = pack_shared([[1, 2]], [[[3, 4], [5]]], pad_id=0, multiple=1)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 2]]
    mask = shared_attention_mask(batch["segment_ids"])[0, 0].int().tolist()
    assert mask == [[1, 0, 0, 0, 0],
                    [1, 1, 0, 0, 0],
                    [1, 1, 1, 0, 0],
                    [1, 1, 1, 1, 0],
                    [1, 1, 0, 0, 1]]  # the second reply never sees the first


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_reply_logps_equal_separate_rows(family):
    model = tiny_lm(family)
    batch = pack_shared(PROMPTS, REPLIES, pad_id=0)
    with torch.no_grad():
        logits = shared_forward(model, batch).logits
    logps, mask = reply_token_logps(logits, batch)
    n = 0
    for prompt, group in zip(PROMPTS, REPLIES):
        for reply in group:
            with torch.no_grad():
                expected = separate_logps(model, prompt, reply)
            assert mask[n].sum() == len(reply)
            torch.testing.assert_close(logps[n, :len(reply)], expected, atol=1e-5, rtol=1e-5)
            n += 1


def test_gradients_equal_separate_rows():
    model = tiny_lm()
    batch = pack_shared(PROMPTS, REPLIES, pad_id=0)
    logps, _ = reply_token_logps(shared_forward(model, batch).logits, batch)
    logps.sum().backward()
    shared = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    total = sum(separate_logps(model, p, r).sum() for p, g in zip(PROMPTS, REPLIES) for r in g)
    total.backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(shared[name], param.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_logits_and_labels_in_row_layout():
    model = tiny_lm()
    batch = pack_shared(PROMPTS, REPLIES, pad_id=0)
    with torch.no_grad():
        logits = shared_forward(model, batch).logits
    picked, labels = reply_logits_and_labels(logits, batch, torch.tensor([1, 3]), ignore_index=-100)
    assert labels[0].tolist()[:4] == [-100, 30, 31, -100]
    assert labels[1].tolist() == [-100, 50, -100, -100, -100, -100, -100]
    expected = separate_logps(model, PROMPTS[0], REPLIES[0][1])
    got = picked[0, :2].float().log_softmax(-1).gather(1, torch.tensor([[30], [31]])).squeeze(-1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_reward_scores_at_each_reply_end_equal_separate_rows():
    model = tiny_lm(head="score")
    score = model.score
    batch = pack_shared(PROMPTS, REPLIES, pad_id=0)
    with torch.no_grad():
        hidden = shared_forward(model, batch, output_hidden_states=True).hidden_states[-1]
        rows, last = last_positions(batch)
        shared = score(hidden[rows, last]).squeeze(-1)
        separate = [score(model(input_ids=torch.tensor([p + r]), output_hidden_states=True).hidden_states[-1][0, -1])
                    for p, g in zip(PROMPTS, REPLIES) for r in g]
    torch.testing.assert_close(shared, torch.cat(separate), atol=1e-5, rtol=1e-5)


def pair_items():
    """Two pairs: prompt tokens unlabelled, replies labelled, a trailing unlabelled token after each reply
    (ChatML's newline after the end-of-turn), replies of different lengths sharing their first token."""
    ign = -100
    items = []
    for prompt, chosen, rejected in (([5, 6, 7, 8], [20, 21, 22], [20, 30]), ([9, 10], [40], [41, 42, 43, 44])):
        items.append({"input_ids": prompt + chosen + [3], "labels": [ign] * len(prompt) + chosen + [ign],
                      "rejected_input_ids": prompt + rejected + [3],
                      "rejected_labels": [ign] * len(prompt) + rejected + [ign]})
    return items


class Sink:
    def __init__(self):
        self.values = {}

    def record(self, **values):
        self.values.update(values)

    def observe_tokens(self, logits, labels):
        self.tokens = (logits, labels)


@pytest.mark.parametrize("pref", [dict(pref_loss="sigmoid", pref_ftx=0.5), dict(pref_loss="simpo"),
                                  dict(pref_loss="sigmoid", ld_alpha=0.3), dict(pref_loss="orpo")])
def test_dpo_loss_and_gradients_equal_in_both_layouts(pref):
    from tunesmith.config.schema import PreferenceArgs
    from tunesmith.stages.base import LossContext
    from tunesmith.stages.dpo import DPOLoss
    from tunesmith.stages.preference.pairwise import PairwiseStage

    model = tiny_lm()
    loss_fn = DPOLoss(PreferenceArgs(**pref))

    class Ref:
        kind = "test"

        def run(self, policy, fn):
            with torch.no_grad():
                return fn(policy) - 0.25  # any fixed reference

    results = []
    for shared in (False, True):
        batch = PairwiseStage().collator(0, shared_prompt=shared)(pair_items())
        assert ("segment_ids" in batch) == shared
        model.zero_grad()
        sink = Sink()
        loss = loss_fn(LossContext(sink, Ref()), model, batch)
        loss.backward()
        results.append((loss.detach(), sink.values, {n: p.grad.clone() for n, p in model.named_parameters()}))
    (loss_a, metrics_a, grads_a), (loss_b, metrics_b, grads_b) = results
    torch.testing.assert_close(loss_a, loss_b, atol=1e-5, rtol=1e-5)
    for key in metrics_a:
        torch.testing.assert_close(metrics_a[key], metrics_b[key], atol=1e-5, rtol=1e-5, msg=key)
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], atol=1e-5, rtol=1e-4, msg=name)


def test_reward_loss_equal_in_both_layouts_and_shared_rows_are_shorter():
    from tunesmith.stages.base import LossContext
    from tunesmith.stages.preference.pairwise import PairwiseStage
    from tunesmith.stages.rm import RewardLoss

    model = tiny_lm(head="score")
    values = []
    for shared in (False, True):
        batch = PairwiseStage().collator(0, shared_prompt=shared)(pair_items())
        sink = Sink()
        tokens = (batch["segment_ids"] >= 0).sum() if shared else batch["attention_mask"].sum()
        with torch.no_grad():
            values.append((RewardLoss()(LossContext(sink), model, batch), sink.values["rewards/chosen"],
                           int(tokens)))
    torch.testing.assert_close(values[0][0], values[1][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(values[0][1], values[1][1], atol=1e-5, rtol=1e-5)
    assert (values[0][2], values[1][2]) == (26, 20)  # each prompt once: 26 - (4 + 2) real tokens


@pytest.mark.parametrize("overrides, shared, reason", [
    ({}, True, "one prompt pass"),
    ({"shared_prompt": False}, False, "shared_prompt: false"),
    ({"flash_attn": "eager"}, False, "attention eager takes no custom 4D mask"),
    ({"stage": "grpo", "reward_funcs": "accuracy"}, True, "one prompt pass"),
])
def test_run_plan_chooses_the_layout(qwen2_model, tmp_path, overrides, shared, reason):
    from tunesmith.config.load import build_config
    from tunesmith.stages.registry import get_stage
    from tunesmith.train.plan import make_plan

    raw = {"model_name_or_path": str(qwen2_model), "stage": "dpo", "do_train": True, "finetuning_type": "lora",
           "dataset": "pairs", "template": "qwen3_nothink", "output_dir": str(tmp_path), **overrides}
    cfg = build_config({k: (v, "test") for k, v in raw.items()})
    plan = make_plan(cfg, get_stage(cfg.stage))
    assert plan.shared_prompt is shared and reason in plan.shared_prompt_reason
    assert ("prompt rows" in plan.summary()) and make_plan(
        build_config({k: (v, "test") for k, v in {**raw, "stage": "sft"}.items() if k != "reward_funcs"}),
        get_stage("sft")).shared_prompt_reason == ""


def test_sliding_window_models_keep_separate_rows():
    from tunesmith.stages.preference.shared_prompt import layout_choice

    assert layout_choice("sdpa", {"sliding_window": 4096, "use_sliding_window": False})[0] is True
    assert layout_choice("sdpa", {"sliding_window": 4096})[0] is False  # mistral-style: window always on
    assert layout_choice("sdpa", {"layer_types": ["full_attention", "sliding_attention"]})[0] is False
    assert layout_choice("flash_attention_2", {})[0] is False
