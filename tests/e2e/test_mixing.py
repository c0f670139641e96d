"""Dataset mixing as the trainer actually sees it: sequential phases really come first; interleaving."""

from __future__ import annotations

import json
import logging

import pytest
from transformers import TrainerCallback

from tunesmith.data.collate import Collator
from tunesmith.data.mix import interleave
from tunesmith.train.run import run_training


@pytest.fixture()
def phased_data(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    for name in ("warm", "main"):
        rows = [{"instruction": f"{name} {i}", "input": "", "output": f"ok {i}"} for i in range(8)]
        (root / f"{name}.json").write_text(json.dumps(rows))
    (root / "dataset_info.json").write_text(json.dumps({"warm": {"file_name": "warm.json"},
                                                        "main": {"file_name": "main.json"}}))
    return root


@pytest.fixture()
def seen(monkeypatch, qwen2_model):
    """Every batch the trainer collates, as the list of example prompts ("warm 3", ...)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(qwen2_model)
    batches: list[list[str]] = []
    original = Collator.__call__

    def recording(self, items):
        batches.append([tok.decode(item["input_ids"]).split("user\n")[1].split("<|im_end|>")[0] for item in items])
        return original(self, items)

    monkeypatch.setattr(Collator, "__call__", recording)
    return batches


class Crash(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise RuntimeError("simulated crash")


def test_sequential_trains_every_warmup_example_first(qwen2_model, phased_data, train_config, seen, caplog):
    cfg = train_config(qwen2_model, dataset="warm,main", dataset_dir=str(phased_data), mix_strategy="sequential",
                       per_device_train_batch_size=2, max_steps=8, dataloader_num_workers=0, packing=False)
    with caplog.at_level(logging.INFO, logger="tunesmith"):
        run_training(cfg)
    order = [prompt for batch in seen for prompt in batch]
    assert [p.split()[0] for p in order] == ["warm"] * 8 + ["main"] * 8
    assert sorted(order[:8]) == [f"warm {i}" for i in range(8)]
    assert order[:8] != [f"warm {i}" for i in range(8)]  # shuffled within the phase
    assert "sequential phase 2/2: dataset `main` starts at step 5" in caplog.text


def test_sequential_with_packing_never_mixes_phases_in_a_row(qwen2_model, phased_data, train_config, caplog,
                                                             monkeypatch):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(qwen2_model)
    rows: list[list[str]] = []
    original = Collator.__call__

    def recording(self, items):
        for item in items:
            text = tok.decode(item["input_ids"])
            rows.append([part.split("<|im_end|>")[0] for part in text.split("user\n")[1:]])
        return original(self, items)

    monkeypatch.setattr(Collator, "__call__", recording)
    cfg = train_config(qwen2_model, dataset="warm,main", dataset_dir=str(phased_data), mix_strategy="sequential",
                       per_device_train_batch_size=1, cutoff_len=64, max_steps=40, dataloader_num_workers=0)
    with caplog.at_level(logging.INFO, logger="tunesmith"):
        run_training(cfg)
    phases = [{prompt.split()[0] for prompt in row} for row in rows]
    assert all(len(p) == 1 for p in phases)  # a packed row holds one dataset's examples
    first_main = phases.index({"main"})
    assert first_main > 0 and all(p == {"warm"} for p in phases[:first_main])
    assert sorted(prompt for row in rows[:first_main] for prompt in row) == sorted(f"warm {i}" for i in range(8))
    assert f"sequential phase 2/2: dataset `main` starts at step {first_main + 1}" in caplog.text


def test_sequential_resume_continues_in_the_right_phase(qwen2_model, phased_data, train_config, seen, tmp_path):
    common = dict(dataset="warm,main", dataset_dir=str(phased_data), mix_strategy="sequential",
                  per_device_train_batch_size=2, max_steps=8, save_strategy="steps", save_steps=2)
    run_training(train_config(qwen2_model, output_dir=str(tmp_path / "a"), **common))
    straight = [p for b in seen for p in b]
    seen.clear()
    cfg = train_config(qwen2_model, output_dir=str(tmp_path / "b"), overwrite_output_dir=False, **common)
    with pytest.raises(RuntimeError):
        run_training(cfg, extra_callbacks=[Crash()])
    seen.clear()
    run_training(cfg)  # resumes from checkpoint-2
    assert [p for b in seen for p in b] == straight[4:]


def test_concat_says_it_shuffles_together(qwen2_model, phased_data, train_config, caplog):
    with caplog.at_level(logging.INFO, logger="tunesmith"):
        run_training(train_config(qwen2_model, dataset="warm,main", dataset_dir=str(phased_data), max_steps=1))
    assert "are concatenated and shuffled together; set mix_strategy: sequential" in caplog.text


def test_interleave_strategies():
    a, b = list("aaaa"), list("bb")
    assert interleave([a, b], None, "interleave_under", 0) == list("abab") + ["a"]
    over = interleave([a, b], None, "interleave_over", 0)
    assert over.count("a") == 4 and over.count("b") >= 4  # b is oversampled until a is exhausted too
    once = interleave([a, b], None, "interleave_once", 0)
    assert sorted(once) == sorted(a + b)
    weighted = interleave([list(range(1000)), list(range(1000, 2000))], [0.9, 0.1], "interleave_under", 0)
    share = sum(1 for x in weighted if x < 1000) / len(weighted)
    assert 0.85 < share < 0.95
