"""`do_predict` with `predict_with_generate`: LLaMA-Factory's nlg_eval example runs unchanged, the written
predictions are the model's greedy replies in dataset order, and BLEU-4 / ROUGE equal an independent computation
of LLaMA-Factory's formulas on the written lines; a predict-only run needs no training dataset."""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from tunesmith.cli import main
from tunesmith.config.errors import ConfigError
from tunesmith.config.load import build_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "llamafactory"
ALPACA = [{"instruction": f"Repeat the word {w}.", "input": "", "output": f"{w} {w}"}
          for w in ("apple", "river", "stone", "cloud", "green", "light")]
IDENTITY = [{"instruction": "Who are you?", "input": "", "output": "我是一个小模型，名字叫 Tuney。"},
            {"instruction": "你好", "input": "", "output": "你好！今天天气很好。"}]


# -- LLaMA-Factory's formulas, written out independently of nltk and rouge-chinese ----------------------------
def words(text: str) -> list[str]:
    import jieba

    return " ".join(jieba.cut(text)).split()


def rouge_f(hyp: list[str], ref: list[str], n: int) -> float:
    """ROUGE-N F of rouge-chinese: distinct n-grams (sets), F = 2PR/(P+R+1e-8)."""
    grams = lambda w: {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}  # noqa: E731
    h, r = grams(hyp), grams(ref)
    p = len(h & r) / len(h) if h else 0.0
    rc = len(h & r) / len(r) if r else 0.0
    return 2.0 * p * rc / (p + rc + 1e-8)


def rouge_l(hyp: list[str], ref: list[str]) -> float:
    table = [[0] * (len(hyp) + 1) for _ in range(len(ref) + 1)]
    for i, a in enumerate(ref):
        for j, b in enumerate(hyp):
            table[i + 1][j + 1] = table[i][j] + 1 if a == b else max(table[i][j + 1], table[i + 1][j])
    lcs = table[-1][-1]
    p, r = lcs / len(hyp), lcs / len(ref)
    return 2.0 * p * r / (p + r + 1e-8)


def bleu4(hyp: str, ref: str) -> float:
    """Sentence BLEU-4 over characters with NIST geometric smoothing (nltk's method3)."""
    h, r = list(hyp), list(ref)
    if not h:
        return 0.0
    precisions, k = [], 1
    for n in range(1, 5):
        hc = Counter(tuple(h[i:i + n]) for i in range(len(h) - n + 1))
        rc = Counter(tuple(r[i:i + n]) for i in range(len(r) - n + 1))
        matched = sum(min(c, rc[g]) for g, c in hc.items())
        total = max(1, sum(hc.values()))
        if n == 1 and matched == 0:
            return 0.0
        if matched == 0:
            precisions.append(1 / (2 ** k * total))
            k += 1
        else:
            precisions.append(matched / total)
    bp = 1.0 if len(h) > len(r) else math.exp(1 - len(r) / len(h))
    return bp * math.exp(sum(0.25 * math.log(p) for p in precisions))


def by_hand(rows: list[dict]) -> dict[str, float]:
    keys = ("bleu-4", "rouge-1", "rouge-2", "rouge-l")
    sums = dict.fromkeys(keys, 0.0)
    for row in rows:
        hyp, ref = words(row["predict"]), words(row["label"])
        if hyp and ref:
            sums["rouge-1"] += round(rouge_f(hyp, ref, 1) * 100, 4)
            sums["rouge-2"] += round(rouge_f(hyp, ref, 2) * 100, 4)
            sums["rouge-l"] += round(rouge_l(hyp, ref) * 100, 4)
        sums["bleu-4"] += round(bleu4(row["predict"], row["label"]) * 100, 4)
    return {f"predict_{k}": v / len(rows) for k, v in sums.items()}


def test_hand_formulas_on_a_worked_example():
    # "the cat sat" vs "the cat sat on the mat", by hand: 3 of the 5 distinct reference words (P 1, R 3/5),
    # 2 of its 5 distinct bigrams (P 1, R 2/5), a common subsequence of 3 of its 6 words (P 1, R 1/2)
    hyp, ref = ["the", "cat", "sat"], ["the", "cat", "sat", "on", "the", "mat"]
    assert rouge_f(hyp, ref, 1) == pytest.approx(2 * 1 * 0.6 / 1.6, abs=1e-6)
    assert rouge_f(hyp, ref, 2) == pytest.approx(2 * 1 * 0.4 / 1.4, abs=1e-6)
    assert rouge_l(hyp, ref) == pytest.approx(2 * 1 * 0.5 / 1.5, abs=1e-6)
    assert bleu4("abcd", "abcd") == pytest.approx(1.0)
    # 3/4 unigrams, 2/3 bigrams, 1/2 trigrams, no 4-gram (smoothed to 1/(2 x 1)); equal lengths: no penalty
    assert bleu4("abcx", "abcd") == pytest.approx(math.exp(0.25 * math.log((3 / 4) * (2 / 3) * (1 / 2) * (1 / 2))))


def test_library_scores_equal_the_hand_formulas():
    from tunesmith.evaluation.nlg import similarity

    rows = [{"predict": "the cat sat", "label": "the cat sat on the mat"},
            {"predict": "今天天气很好", "label": "今天天气不错，我们去公园。"},
            {"predict": "", "label": "nothing"}, {"predict": "x", "label": "y"}]
    got = {f"predict_{k}": v for k, v in similarity([r["predict"] for r in rows], [r["label"] for r in rows]).items()}
    assert got == pytest.approx(by_hand(rows), abs=1e-3)
    assert got["predict_bleu-4"] > 0 and got["predict_rouge-1"] > 0


# -- end to end ---------------------------------------------------------------------------------------------------
def lf_project(tmp_path: Path, data_dir: Path) -> Path:
    """A folder laid out like LLaMA-Factory's root, with its demo sets identity and alpaca_en_demo."""
    root = tmp_path / "lf"
    shutil.copytree(data_dir, root / "data")
    (root / "data" / "identity.json").write_text(json.dumps(IDENTITY, ensure_ascii=False), encoding="utf-8")
    (root / "data" / "alpaca_en_demo.json").write_text(json.dumps(ALPACA), encoding="utf-8")
    info = json.loads((root / "data" / "dataset_info.json").read_text())
    info.update(identity={"file_name": "identity.json"}, alpaca_en_demo={"file_name": "alpaca_en_demo.json"})
    (root / "data" / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    return root


def greedy_replies(model_dir: Path, adapter: Path, prompts: list[str], stop_ids: list[int], max_new: int):
    """One prompt at a time, no batching: what the batched predictions must equal."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(adapter if (adapter / "tokenizer.json").exists() else model_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), adapter).merge_and_unload()
    out = []
    for prompt in prompts:
        ids = torch.tensor([tok.encode(prompt, add_special_tokens=False)])
        gen = model.generate(ids, max_new_tokens=max_new, do_sample=False, eos_token_id=stop_ids,
                             pad_token_id=tok.pad_token_id)[0, ids.shape[1]:].tolist()
        cut = next((i for i, t in enumerate(gen) if t in stop_ids), len(gen))
        out.append(tok.decode(gen[:cut], skip_special_tokens=True))
    return out


def test_llamafactory_nlg_eval_example_runs_unchanged(llama3_model, data_dir, tmp_path, monkeypatch):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = lf_project(tmp_path, data_dir)
    adapter = root / "saves/llama3-8b/lora/sft"
    model = AutoModelForCausalLM.from_pretrained(llama3_model)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(adapter)  # a LoRA that changes the model (random A and B)
    text = (FIXTURES / "llama3_lora_predict.yaml").read_text()
    text = text.replace("meta-llama/Meta-Llama-3-8B-Instruct", str(llama3_model))
    (root / "predict.yaml").write_text(text)
    monkeypatch.chdir(root)
    # the file as LLaMA-Factory ships it (model path aside); greedy, short replies keep the test fast
    assert main(["train", "predict.yaml", "do_sample=false", "max_new_tokens=6"]) == 0
    out = root / "saves/llama3-8b/lora/predict"
    rows = [json.loads(line) for line in (out / "generated_predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["label"] for r in rows] == [r["output"] for r in IDENTITY + ALPACA]  # every example, in order
    assert all(r["prompt"].startswith("<|begin_of_text|><|start_header_id|>user") for r in rows)
    results = json.loads((out / "predict_results.json").read_text())
    assert {k: results[k] for k in by_hand(rows)} == pytest.approx(by_hand(rows), abs=1e-3)
    assert results["predict_generated_tokens"] > 0 and results["predict_tokens_per_second"] > 0
    from tunesmith.templates.builtin import get_template
    from tunesmith.templates.stops import stop_token_ids
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(llama3_model)
    stops = stop_token_ids(tok, get_template("llama3"))
    assert [r["predict"] for r in rows] == greedy_replies(llama3_model, adapter, [r["prompt"] for r in rows[:3]],
                                                          stops, 6) + [r["predict"] for r in rows[3:]]


def test_train_then_predict_uses_the_trained_model(qwen2_model, train_config, tmp_path):
    from tunesmith.evaluation.run import run

    cfg = train_config(qwen2_model, do_predict=True, predict_with_generate=True, eval_dataset="arith",
                       do_sample=False, max_new_tokens=8, max_steps=30, learning_rate=1e-2,
                       per_device_eval_batch_size=3)
    metrics = run(cfg)
    rows = [json.loads(x) for x in (Path(cfg.output_dir) / "generated_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and rows[0]["label"] == "1+1=2" and rows[-1]["label"] == "6+3=9"  # dataset order
    # the trained model answers in the trained form (the untrained one emits newlines), and the scores see it
    assert all(r["predict"] and set(r["predict"]) <= set("0123456789+=") for r in rows), rows
    assert metrics["predict_bleu-4"] > 0
    # batches of 3, left-padded, give what one prompt at a time gives
    from tunesmith.evaluation.run import evaluate_model

    one = replace(cfg, training={**cfg.training, "per_device_eval_batch_size": 1, "output_dir": str(tmp_path / "one")})
    evaluate_model(one, replace(one, model=replace(one.model, model_name_or_path=cfg.output_dir)))
    single = [json.loads(x) for x in (tmp_path / "one" / "generated_predictions.jsonl").read_text().splitlines()]
    assert [r["predict"] for r in single] == [r["predict"] for r in rows]


@pytest.mark.parametrize("overrides,message", [
    (dict(do_predict=True, predict_with_generate=True), "needs evaluation data"),
    (dict(do_predict=True, eval_dataset="arith"), "set `predict_with_generate: true`"),
    (dict(do_predict=True, predict_with_generate=True, eval_dataset="arith", stage="dpo"), "generates sft replies"),
    (dict(do_predict=True, predict_with_generate=True, eval_dataset="arith", compute_accuracy=True),
     "cannot be used together"),
    (dict(do_train=False), "nothing to do"),
    (dict(do_eval=True, stage="dpo", eval_dataset="pairs"), "stage sft or pt"),
])
def test_bad_prediction_configs_fail_before_loading(overrides, message, tmp_path, data_dir):
    raw = {"model_name_or_path": str(tmp_path), "dataset_dir": str(data_dir), "output_dir": str(tmp_path / "o"),
           **overrides}
    with pytest.raises(ConfigError, match=message):
        build_config({k: (v, "test.yaml") for k, v in raw.items()})


def test_predict_only_needs_no_training_dataset(tmp_path, data_dir):
    raw = {"model_name_or_path": str(tmp_path), "dataset_dir": str(data_dir), "output_dir": str(tmp_path / "o"),
           "do_predict": True, "predict_with_generate": True, "eval_dataset": "arith"}
    cfg = build_config({k: (v, "test.yaml") for k, v in raw.items()})
    assert not cfg.data.dataset and cfg.evaluation.predict_with_generate
