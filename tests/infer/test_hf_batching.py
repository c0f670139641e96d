"""The Hugging Face engine generates concurrent requests as one batch: each row gets what it would get alone
(greedy text, its own token budget, stop strings, cancellation), seeded requests run alone and repeat."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tunesmith.config.load import build_config
from tunesmith.infer import hf_engine
from tunesmith.infer.backends import create_engine

PROMPTS = ["What is 1+1?", "Name a colour.", "Say something long about the sea and the sky, please, at length.",
           "Hi"]


def _engine(run, **keys):
    values = {"model_name_or_path": (str(run), "test"), "max_new_tokens": (8, "test"),
              **{k: (v, "test") for k, v in keys.items()}}
    return create_engine(build_config(values, purpose="infer"))


@pytest.fixture(scope="module")
def engines(lora_run):
    return _engine(lora_run), _engine(lora_run, infer_max_batch=1)


@pytest.fixture(autouse=True)
def gather_everything(monkeypatch):
    monkeypatch.setattr(hf_engine, "GATHER_SECONDS", 0.5)  # requests started together share a round


def together(engine, requests):
    """Run (messages, overrides) requests at the same moment; their replies in order."""
    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(lambda r: engine.chat([{"role": "user", "content": r[0]}], **r[1]), requests))


def test_batched_greedy_replies_equal_one_at_a_time(engines):
    batched, single = engines
    budgets = [8, 3, 8, 5]
    requests = [(p, {"temperature": 0, "max_new_tokens": n}) for p, n in zip(PROMPTS, budgets)]
    alone = [single.chat([{"role": "user", "content": p}], **o) for p, o in requests]
    before = len(batched.batch_sizes)
    replies = together(batched, requests)
    assert max(list(batched.batch_sizes)[before:]) > 1, "the requests were not batched"
    for reply, solo, budget in zip(replies, alone, budgets):
        assert (reply.text, reply.finish_reason, reply.completion_tokens) == (
            solo.text, solo.finish_reason, solo.completion_tokens)
        assert reply.completion_tokens <= budget
        assert reply.finish_reason == "stop" or reply.completion_tokens == budget


def test_each_row_keeps_its_own_budget_and_stop_strings(engines):
    batched, single = engines
    long = single.chat([{"role": "user", "content": PROMPTS[2]}], temperature=0, max_new_tokens=8)
    assert len(long.text) > 4
    stop = long.text[2:4]
    replies = together(batched, [(PROMPTS[2], {"temperature": 0, "max_new_tokens": 8, "stop": (stop,)}),
                                 (PROMPTS[2], {"temperature": 0, "max_new_tokens": 1}),
                                 (PROMPTS[2], {"temperature": 0, "max_new_tokens": 8})])
    cut, short, full = replies
    assert cut.text == long.text[:long.text.find(stop)] and cut.finish_reason == "stop"
    assert short.completion_tokens == 1 and short.finish_reason in ("length", "stop")
    assert full.text == long.text


def test_seeded_requests_run_alone_and_repeat(engines):
    batched, _ = engines
    requests = [(PROMPTS[0], {"temperature": 1.0, "seed": 7})] * 3
    before = len(batched.batch_sizes)
    replies = together(batched, requests)
    assert set(list(batched.batch_sizes)[before:]) == {1}
    assert len({r.text for r in replies}) == 1


class GoneAfter(threading.Event):
    """A client that goes away after the engine has looked ``checks`` times whether it is still there."""

    def __init__(self, checks: int):
        super().__init__()
        self.left = checks

    def is_set(self) -> bool:
        self.left -= 1
        return self.left < 0 or super().is_set()


def test_cancelled_rows_stop_and_the_others_finish(engines):
    batched, _ = engines
    ask = [{"role": "user", "content": PROMPTS[2]}]
    ids = batched.prompt_ids(ask)
    options = batched.sampling(len(ids), temperature=0, max_new_tokens=8)
    before = len(batched.batch_sizes)
    gone_at_once = threading.Event()
    gone_at_once.set()
    with ThreadPoolExecutor(3) as pool:
        never = pool.submit(batched.generate, ids, options, None, gone_at_once)
        midway = pool.submit(batched.generate, ids, options, None, GoneAfter(4))
        other = pool.submit(batched.generate, ids, options)
        never, midway, other = never.result(), midway.result(), other.result()
    assert (never.finish_reason, never.completion_tokens) == ("cancelled", 0)
    assert midway.finish_reason == "cancelled" and 0 < midway.completion_tokens < 8
    assert other.finish_reason in ("length", "stop") and (other.completion_tokens == 8 or other.finish_reason == "stop")
    assert max(list(batched.batch_sizes)[before:]) == 2  # the request gone before its round never ran
