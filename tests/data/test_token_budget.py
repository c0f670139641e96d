"""Token-budget batching: every micro-batch fits the budget (padding included), every example is trained once
per epoch, phases stay in order, processes get disjoint batches; and training runs on it (sft, dpo)."""

from __future__ import annotations

import random

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.data.collate import Collator
from tunesmith.data.sampler import TokenBudgetBatches, budget_batches, example_cost
from tunesmith.train.run import run_training


def padded(batch, costs, multiple=8):
    rows = sum(costs[i][0] for i in batch)
    return rows * (-(-max(costs[i][1] for i in batch) // multiple) * multiple)


def test_batches_fit_the_budget_and_cover_every_example_once():
    rng = random.Random(0)
    costs = [(1, rng.randint(5, 300)) for _ in range(500)] + [(2, rng.randint(5, 300)) for _ in range(100)]
    batches = budget_batches(costs, 1024, 8, sort=True)
    assert sorted(i for b in batches for i in b) == list(range(600))
    assert all(padded(b, costs) <= 1024 for b in batches)
    fill = sum(rows * n for rows, n in costs) / sum(padded(b, costs) for b in batches)
    unsorted = budget_batches(costs, 1024, 8, sort=False)
    unsorted_fill = sum(rows * n for rows, n in costs) / sum(padded(b, costs) for b in unsorted)
    assert fill > 0.9 and fill > unsorted_fill + 0.2  # grouping by length leaves little padding


def test_an_example_longer_than_the_budget_gets_a_batch_of_its_own():
    assert budget_batches([(1, 10), (1, 500), (1, 12)], 256, 8, sort=True) == [[1], [2, 0]]


def test_epochs_reshuffle_deterministically_within_phases_and_processes_split_the_batches():
    costs = [(1, 10 + i % 50) for i in range(120)]
    sampler = TokenBudgetBatches(costs, 200, seed=3, phase_sizes=[40, 80])
    first = list(sampler)
    assert list(sampler) == first  # same epoch, same order (resuming replays it)
    sampler.set_epoch(1)
    assert list(sampler) != first and sorted(map(sorted, sampler)) == sorted(map(sorted, first))
    n_phase0 = sampler.phase_batch_counts[0]
    assert all(max(b) < 40 for b in first[:n_phase0]) and all(min(b) >= 40 for b in first[n_phase0:])
    shards = [list(TokenBudgetBatches(costs, 200, seed=3, rank=r, world_size=3)) for r in range(3)]
    assert len({len(s) for s in shards}) == 1 == len({len(TokenBudgetBatches(costs, 200, 3, world_size=3))})
    seen = [i for s in shards for b in s for i in b]
    assert set(seen) == set(range(120))


def test_example_cost_counts_both_rows_of_a_pair():
    assert example_cost({"input_ids": [1] * 5, "rejected_input_ids": [1] * 9}) == (2, 9)
    assert example_cost({"input_ids": [1] * 5, "kl_input_ids": [1] * 3}) == (2, 5)
    assert example_cost({"input_ids": [1] * 5}) == (1, 5)


@pytest.fixture()
def batch_sizes(monkeypatch):
    sizes: list[tuple[int, int]] = []
    original = Collator.__call__

    def recording(self, items):
        batch = original(self, items)
        sizes.append(tuple(batch["input_ids"].shape))
        return batch

    monkeypatch.setattr(Collator, "__call__", recording)
    return sizes


def test_sft_trains_on_token_budget_batches(qwen2_model, train_config, batch_sizes, caplog):
    cfg = train_config(qwen2_model, dataset="arith,chat", packing=False, max_tokens_per_batch=128,
                       max_steps=8, dataloader_num_workers=0)
    with caplog.at_level("INFO", logger="tunesmith"):
        result = run_training(cfg)
    assert "max_tokens_per_batch=128:" in caplog.text
    assert batch_sizes and all(rows * width <= 128 for rows, width in batch_sizes)
    assert len({rows for rows, _ in batch_sizes}) > 1  # the batch size follows the lengths
    assert result.global_step == 8 and result.train_loss is not None


def test_dpo_trains_on_token_budget_batches(qwen2_model, train_config):
    cfg = train_config(qwen2_model, stage="dpo", dataset="pairs", finetuning_type="lora", max_tokens_per_batch=256,
                       max_steps=3, dataloader_num_workers=0)
    assert run_training(cfg).global_step == 3


@pytest.mark.parametrize("extra,message", [
    (dict(max_tokens_per_batch=64), "must be at least `cutoff_len`"),
    (dict(max_tokens_per_batch=512, streaming=True), "needs the data in memory"),
])
def test_bad_budgets_fail_clearly(qwen2_model, train_config, extra, message):
    with pytest.raises(ConfigError, match=message):
        train_config(qwen2_model, **extra)
