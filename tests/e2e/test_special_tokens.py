"""Special tokens: adding, initialising, K-step freezes that really hold, per-token loss weights."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from tunesmith.config.load import build_config
from tunesmith.model.tokens import add_to_tokenizer, embedding_matrices
from tunesmith.train.callbacks.log_file import read_log
from tunesmith.train.losses import token_weight_correction
from tunesmith.train.run import run_training
from tunesmith.train.token_training import prepare_model
from tunesmith.types import IGNORE_INDEX


@pytest.fixture()
def marker_data(tmp_path):
    """Replies that contain <extra_id_N> markers."""
    root = tmp_path / "data"
    root.mkdir()
    rows = [{"instruction": f"mark {i}", "input": "", "output": f"<extra_id_{i % 3}> item {i} <extra_id_{(i + 1) % 3}>"}
            for i in range(8)]
    (root / "marks.json").write_text(json.dumps(rows))
    (root / "dataset_info.json").write_text(json.dumps({"marks": {"file_name": "marks.json"}}))
    return root


def token_args(**kw):
    raw = {"model_name_or_path": "m", "dataset": "a", "output_dir": "o", "template": "qwen", **kw}
    return build_config({k: (v, "test") for k, v in raw.items()}).tokens


def loaded(path):
    return AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)


def test_added_tokens_resize_to_a_multiple_and_encode_as_one(qwen2_untied_model):
    tok, model = loaded(qwen2_untied_model)
    rows_before = model.get_input_embeddings().weight.shape[0]
    added = add_to_tokenizer(tok, token_args(add_extra_id_tokens=3, add_special_tokens="<sep>"))
    assert set(added.ids) == {"<extra_id_0>", "<extra_id_1>", "<extra_id_2>", "<sep>"}
    assert all(len(tok.encode(t, add_special_tokens=False)) == 1 for t in added.ids)
    assert prepare_model(model, tok, added, token_args(), seed=0)
    rows = model.get_input_embeddings().weight.shape[0]
    assert rows % 64 == 0 and rows >= len(tok) > rows_before - 64
    assert model.get_output_embeddings().weight.shape[0] == rows


def test_pre_padded_vocabulary_is_not_resized_and_its_rows_are_initialised(qwen2_model, tmp_path):
    from tunesmith.model.tiny import build_tiny_model

    path = build_tiny_model(tmp_path / "padded", "qwen2", vocab_size=500, hidden_size=32, num_layers=1)
    tok, model = loaded(path)
    rows = model.get_input_embeddings().weight.shape[0]
    assert rows > len(tok)  # 500 tokens in 512 rows
    added = add_to_tokenizer(tok, token_args(add_special_tokens="<a>,<b>"))
    before = model.get_input_embeddings().weight.detach().clone()
    assert not prepare_model(model, tok, added, token_args(init_special_tokens="mean"), seed=0)
    after = model.get_input_embeddings().weight
    mean = before[: len(tok) - 2].mean(0)
    for tid in added.ids.values():
        torch.testing.assert_close(after[tid], mean)


def test_copy_init_from_named_tokens_in_input_and_untied_output_rows(qwen2_untied_model):
    tok, model = loaded(qwen2_untied_model)
    added = add_to_tokenizer(tok, token_args(add_special_tokens="<dash>,<ans>"))
    prepare_model(model, tok, added, token_args(init_special_tokens_from="<dash>=-,<ans>=answer"), seed=0)
    dash = tok.encode("-", add_special_tokens=False)
    answer = tok.encode("answer", add_special_tokens=False)
    for weight in embedding_matrices(model):
        assert torch.equal(weight[added.ids["<dash>"]], weight[dash].mean(0))
        torch.testing.assert_close(weight[added.ids["<ans>"]], weight[answer].mean(0))


def test_noise_init_rows_sit_at_the_scale_of_existing_rows(qwen2_untied_model):
    tok, model = loaded(qwen2_untied_model)
    added = add_to_tokenizer(tok, token_args(add_extra_id_tokens=32))
    prepare_model(model, tok, added, token_args(), seed=0)
    for weight in embedding_matrices(model):
        new = weight[added.all_ids].norm(dim=1).mean()
        old = weight[: min(added.all_ids)].norm(dim=1).mean()
        assert 0.7 < float(new / old) < 1.3
        cos = torch.nn.functional.cosine_similarity(weight[added.all_ids[0]], weight[added.all_ids[1]], dim=0)
        assert abs(float(cos)) < 0.9  # distinct rows


def test_desc_init_averages_description_tokens(qwen2_untied_model, tmp_path):
    desc = tmp_path / "desc.yaml"
    desc.write_text("<q>: question mark\n<e>: answer\n")
    tok, model = loaded(qwen2_untied_model)
    added = add_to_tokenizer(tok, token_args(new_special_tokens_config=str(desc)))
    prepare_model(model, tok, added, token_args(init_special_tokens="desc_init"), seed=0)
    ids = tok.encode("question mark", add_special_tokens=False)
    weight = model.get_input_embeddings().weight
    cos = torch.nn.functional.cosine_similarity(weight[added.ids["<q>"]], weight[ids].mean(0), dim=0)
    assert float(cos) > 0.9999  # the description mean, rescaled to the row scale


class RowRecorder(TrainerCallback):
    """Embedding-shaped trainable tensors before training (``start``) and after every step (``rows``)."""

    def __init__(self):
        self.start, self.rows = None, []

    @staticmethod
    def snapshot(model):
        return [p.detach().clone() for p in model.parameters() if p.dim() == 2 and p.shape[0] >= 512 and
                p.requires_grad]

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.start = self.snapshot(model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.rows.append(self.snapshot(model))


@pytest.mark.parametrize("method", ["full", "freeze", "lora"])
def test_freeze_extra_id_rows_hold_for_k_steps_with_weight_decay(method, qwen2_untied_model, marker_data,
                                                                 train_config, caplog):
    recorder = RowRecorder()
    cfg = train_config(qwen2_untied_model, dataset="marks", dataset_dir=str(marker_data), finetuning_type=method,
                       add_extra_id_tokens=3, freeze_extra_id_steps=3, weight_decay=0.1, max_steps=6,
                       per_device_train_batch_size=4, learning_rate=1e-2)
    with caplog.at_level(logging.INFO, logger="tunesmith"):
        run_training(cfg, extra_callbacks=[recorder])
    tok = AutoTokenizer.from_pretrained(cfg.output_dir)
    ids = [tok.convert_tokens_to_ids(f"<extra_id_{i}>") for i in range(3)]
    other = ids[0] - 1  # an ordinary token row for contrast
    start = recorder.start
    assert len(start) == 2  # untied: input embedding and output head
    for step in range(3):  # after steps 1..3: bit-identical to the rows before training
        for now, first in zip(recorder.rows[step], start):
            assert torch.equal(now[ids], first[ids])
    assert any(not torch.equal(now[ids], first[ids]) for now, first in zip(recorder.rows[5], start))
    assert any(not torch.equal(now[other], first[other]) for now, first in zip(recorder.rows[2], start))
    assert "Found 3 extra_id tokens: " in caplog.text
    assert "Froze embeddings for 3 extra_id tokens for 3 steps" in caplog.text
    assert "Unfroze extra_id token embeddings at step 3" in caplog.text


def naive_weighted_loss(logits, labels, weights):
    total, count = 0.0, 0
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1] - 1):
            y = int(labels[b, t + 1])
            if y == IGNORE_INDEX:
                continue
            ce = -torch.log_softmax(logits[b, t].double(), -1)[y]
            total += float(weights[y]) * float(ce)
            count += 1
    return total / count


def test_weighted_loss_matches_a_hand_computation():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)
    labels = torch.tensor([[IGNORE_INDEX, 3, 7, 7, 1, IGNORE_INDEX], [IGNORE_INDEX, IGNORE_INDEX, 7, 2, 9, 3]])
    weights = torch.ones(11)
    weights[7], weights[3] = 0.1, 2.5
    from torch.nn.functional import cross_entropy
    from tunesmith.train.losses import shift_labels

    targets = shift_labels(labels)
    n = int((targets != IGNORE_INDEX).sum())
    standard = cross_entropy(logits.view(-1, 11), targets.view(-1), ignore_index=IGNORE_INDEX, reduction="sum") / n
    weighted = standard + token_weight_correction(logits, labels, weights, n)
    assert abs(float(weighted) - naive_weighted_loss(logits, labels, weights)) < 1e-5
    assert float(token_weight_correction(logits, labels, torch.ones(11), n)) == 0.0


def test_all_one_weights_give_exactly_the_standard_loss(qwen2_model, marker_data, train_config, tmp_path):
    common = dict(dataset="marks", dataset_dir=str(marker_data), add_extra_id_tokens=3, max_steps=3)
    plain = run_training(train_config(qwen2_model, output_dir=str(tmp_path / "a"), **common))
    ones = run_training(train_config(qwen2_model, output_dir=str(tmp_path / "b"), extra_id_loss_weight=1.0,
                                     token_loss_weights="<extra_id_0>=1.0", **common))
    light = run_training(train_config(qwen2_model, output_dir=str(tmp_path / "c"), extra_id_loss_weight=0.1,
                                      **common))
    losses = lambda r: [x["loss"] for x in read_log(r.output_dir) if "loss" in x]  # noqa: E731
    assert losses(plain) == losses(ones)
    assert losses(light)[0] < losses(plain)[0]  # down-weighting some targets lowers the mean


def test_special_token_metrics_are_logged_plotted_and_evaluated(qwen2_model, marker_data, train_config):
    cfg = train_config(qwen2_model, dataset="marks", dataset_dir=str(marker_data), add_extra_id_tokens=3,
                       max_steps=8, logging_steps=2, plot_loss=True, val_size=2, eval_strategy="steps",
                       eval_steps=4, per_device_eval_batch_size=2)
    result = run_training(cfg)
    logs = read_log(result.output_dir)
    train_logs = [r for r in logs if "loss" in r]
    assert all({"special_loss", "special_acc", "ordinary_loss"} <= set(r) for r in train_logs)
    assert train_logs[-1]["special_loss"] < train_logs[0]["special_loss"]
    evals = [r for r in logs if "eval_special_f1" in r]
    assert evals and {"eval_special_precision", "eval_special_recall"} <= set(evals[0])
    assert (result.output_dir / "training_special_tokens.png").exists()


def test_special_token_f1_counts():
    from tunesmith.train.token_metrics import special_token_f1

    # position t predicts label t+1; special id 5
    labels = torch.tensor([[IGNORE_INDEX, 5, 2, 5, 3]])
    preds = torch.tensor([[5, 2, 5, 5, 0]])  # predicts 5 (hit), 2, 5 (hit), 5 (false positive vs 3)
    out = special_token_f1(preds, labels, {"<s5>": 5})
    assert out["special_precision"] == round(2 / 3, 4) and out["special_recall"] == 1.0
    assert out["f1_<s5>"] == round(2 * 2 / (2 * 2 + 1), 4)


@pytest.mark.parametrize("model_name", ["qwen2_untied_model", "qwen2_model"])
def test_new_rows_only_leaves_every_original_row_and_weight_bit_identical(model_name, marker_data, train_config,
                                                                         request):
    from safetensors.torch import load_file

    path = request.getfixturevalue(model_name)
    cfg = train_config(path, dataset="marks", dataset_dir=str(marker_data), add_extra_id_tokens=3,
                       train_new_tokens_only=True, weight_decay=0.1, max_steps=5, learning_rate=1e-2)
    result = run_training(cfg)
    before, after = load_file(str(path / "model.safetensors")), load_file(str(result.output_dir / "model.safetensors"))
    tok = AutoTokenizer.from_pretrained(result.output_dir)
    new = [tok.convert_tokens_to_ids(f"<extra_id_{i}>") for i in range(3)]
    for name, old in before.items():
        now = after[name]
        if now.shape != old.shape:  # resized embedding / head: original rows identical, new rows trained
            assert torch.equal(now[: old.shape[0]], old), name
            assert not torch.equal(now[new], torch.zeros_like(now[new]))
        else:
            assert torch.equal(now, old), name
    assert result.trainable_params < sum(v.numel() for v in after.values())


def test_new_rows_only_under_lora_is_a_small_trainable_tokens_adapter(qwen2_untied_model, marker_data, train_config):
    from safetensors.torch import load_file

    cfg = train_config(qwen2_untied_model, dataset="marks", dataset_dir=str(marker_data), add_extra_id_tokens=3,
                       finetuning_type="lora", train_new_tokens_only=True, max_steps=5, learning_rate=1e-2)
    result = run_training(cfg)
    adapter = load_file(str(result.output_dir / "adapter_model.safetensors"))
    hidden = AutoModelForCausalLM.from_pretrained(qwen2_untied_model).config.hidden_size
    assert sum(v.numel() for v in adapter.values()) == 2 * 3 * hidden  # 3 rows of the embedding and of the head
    assert result.trainable_params == 2 * 3 * hidden


class AllRecorder(TrainerCallback):
    def __init__(self):
        self.start, self.rows = None, []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.start = {n: p.detach().clone() for n, p in model.named_parameters()}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.rows.append({n: p.detach().clone() for n, p in model.named_parameters()})


def test_layered_unfreezing_follows_the_schedule(qwen2_untied_model, marker_data, train_config, caplog):
    recorder = AllRecorder()
    cfg = train_config(qwen2_untied_model, dataset="marks", dataset_dir=str(marker_data), add_extra_id_tokens=3,
                       unfreeze_schedule="new_tokens@0,top2@3,all@6", weight_decay=0.1, max_steps=8,
                       learning_rate=1e-2)
    with caplog.at_level(logging.INFO, logger="tunesmith"):
        run_training(cfg, extra_callbacks=[recorder])
    tok = AutoTokenizer.from_pretrained(cfg.output_dir)
    new = [tok.convert_tokens_to_ids(f"<extra_id_{i}>") for i in range(3)]
    start = recorder.start
    embeds = ("model.embed_tokens.weight", "lm_head.weight")

    def moved(step: int, name: str, rows=None) -> bool:
        now, first = recorder.rows[step][name], start[name]
        return not torch.equal(now[rows], first[rows]) if rows is not None else not torch.equal(now, first)

    old_rows = list(range(new[0]))
    for step in range(3):  # steps 1-3: only the new rows
        for name in start:
            if name in embeds:
                assert moved(step, name, new) and not moved(step, name, old_rows), (step, name)
            else:
                assert not moved(step, name), (step, name)
    for step in range(3, 6):  # steps 4-6: + the top two layers
        for name in start:
            top = ".layers.2." in name or ".layers.3." in name
            if name not in embeds:
                assert moved(step, name) == top, (step, name)
            else:
                assert not moved(step, name, old_rows), (step, name)
    assert all(moved(7, name) for name in start)  # from step 7: everything
    assert "Unfroze " in caplog.text and "at step 3" in caplog.text and "at step 6" in caplog.text


def test_lora_with_added_tokens_keeps_a_tied_head_tied(qwen2_model, marker_data, train_config):
    from peft import PeftModel

    cfg = train_config(qwen2_model, dataset="marks", dataset_dir=str(marker_data), add_extra_id_tokens=3,
                       finetuning_type="lora", max_steps=4, learning_rate=1e-2)
    result = run_training(cfg)
    tok = AutoTokenizer.from_pretrained(result.output_dir)
    base = AutoModelForCausalLM.from_pretrained(qwen2_model)
    base.resize_token_embeddings(json.loads((result.output_dir / "tunesmith.json").read_text())["embedding_rows"])
    merged = PeftModel.from_pretrained(base, result.output_dir).merge_and_unload()
    new = tok.convert_tokens_to_ids("<extra_id_0>")
    assert torch.equal(merged.lm_head.weight, merged.model.embed_tokens.weight)
    assert not torch.equal(merged.model.embed_tokens.weight[new], base.model.embed_tokens.weight[new] * 0)


def test_seed_extra_id_example_prints_the_three_log_lines(qwen2_model, tmp_path, monkeypatch, caplog):
    from pathlib import Path

    from tunesmith.cli import main

    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(repo)
    with caplog.at_level(logging.INFO, logger="tunesmith"):
        code = main(["train", "examples/special_tokens/extra_id_sft.yaml", f"model_name_or_path={qwen2_model}",
                     f"output_dir={tmp_path / 'out'}", "max_steps=24", "disable_tqdm=true"])
    assert code == 0
    assert "Found 10 extra_id tokens: [" in caplog.text
    assert "Froze embeddings for 10 extra_id tokens for 20 steps" in caplog.text
    assert "Unfroze extra_id token embeddings at step 20" in caplog.text
    assert "sequential phase 2/2: dataset `main_data` starts at step 4" in caplog.text


def test_weighted_loss_is_normalised_over_the_whole_accumulation_window(qwen2_model, marker_data, train_config,
                                                                         tmp_path):
    from safetensors.torch import load_file

    # Adam's first step is lr * g / (|g| + eps): with the default eps 1e-8 the rounding-level gradient
    # differences between the two batch layouts move near-zero-gradient weights by up to ~2x the tolerance
    # below (seed-dependent); eps 1e-6 and lr 1e-3 keep them 18-300x under it, and the loss and the gradient
    # norm are compared directly
    common = dict(dataset="marks", dataset_dir=str(marker_data), add_extra_id_tokens=3, extra_id_loss_weight=3.0,
                  max_steps=1, dataloader_num_workers=0, learning_rate=1e-3, adam_epsilon=1e-6)
    one = run_training(train_config(qwen2_model, output_dir=str(tmp_path / "one"), per_device_train_batch_size=4,
                                    **common))
    two = run_training(train_config(qwen2_model, output_dir=str(tmp_path / "two"), per_device_train_batch_size=2,
                                    gradient_accumulation_steps=2, **common))
    first = lambda r: next(x for x in read_log(r.output_dir) if "loss" in x)  # noqa: E731
    assert abs(first(one)["loss"] - first(two)["loss"]) < 1e-5
    assert abs(first(one)["grad_norm"] - first(two)["grad_norm"]) < 1e-4 * first(one)["grad_norm"]
    a, b = load_file(str(one.output_dir / "model.safetensors")), load_file(str(two.output_dir / "model.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)
