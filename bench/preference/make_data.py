"""Deterministic synthetic ranking data for the preference-training benchmark.

Writes a folder laid out like LLaMA-Factory's repo root, in the layout of its ``dpo_en_demo``
(sharegpt, ``"ranking": true``, columns conversations / chosen / rejected):

    OUT/data/dataset_info.json     {"bench_dpo": {"file_name": "bench_dpo.json", "formatting": "sharegpt",
                                                  "ranking": true, "columns": {...}}}
    OUT/data/bench_dpo.json        [{"conversations": [...], "chosen": {...}, "rejected": {...}}, ...]

English only. Lengths are drawn in words from a small built-in vocabulary; with the benchmark's
tokenizer (trained on this very data) a word is about one token. Prompts are 8-60 words; chosen and
rejected replies 12-220 words each, drawn independently (so either can be the longer one). One pair
in five has an earlier exchange (human, gpt, human) before the compared reply.

    python make_data.py OUT [--n 240] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

def _preprocess_words() -> list[str]:
    """The English word list of the preprocessing benchmark's generator (one vocabulary for both)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "preprocess" / "make_data.py"
    spec = importlib.util.spec_from_file_location("preprocess_make_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EN_WORDS


WORDS = _preprocess_words()

ASKS = ["Explain", "Describe", "Summarize", "Rewrite", "Compare", "List", "Write", "Review"]


def text(rng: random.Random, n_words: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n_words)]
    out, i = [], 0
    while i < len(words):
        n = rng.randint(6, 16)
        chunk = words[i:i + n]
        chunk[0] = chunk[0].capitalize()
        out.append(" ".join(chunk) + rng.choice([".", ".", ".", "?", "!"]))
        i += n
    return " ".join(out)


def prompt(rng: random.Random) -> str:
    body = text(rng, rng.randint(8, 60))
    return f"{rng.choice(ASKS)} {body[0].lower()}{body[1:]}"


def reply_words(rng: random.Random) -> int:
    # log-uniform-ish between 12 and 220 words: many short and mid replies, some long ones
    return int(round(12 * (220 / 12) ** rng.random()))


def make_pair(rng: random.Random) -> dict:
    turns = []
    if rng.random() < 0.2:
        turns += [{"from": "human", "value": prompt(rng)}, {"from": "gpt", "value": text(rng, rng.randint(10, 60))}]
    turns.append({"from": "human", "value": prompt(rng)})
    return {
        "conversations": turns,
        "chosen": {"from": "gpt", "value": text(rng, reply_words(rng))},
        "rejected": {"from": "gpt", "value": text(rng, reply_words(rng))},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--n", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    rows = [make_pair(rng) for _ in range(args.n)]
    data = args.out / "data"
    data.mkdir(parents=True, exist_ok=True)
    info = {"bench_dpo": {"file_name": "bench_dpo.json", "formatting": "sharegpt", "ranking": True,
                          "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}}}
    (data / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    target = data / "bench_dpo.json"
    payload = json.dumps(rows, ensure_ascii=False, indent=1) + "\n"
    if not target.exists() or target.read_text(encoding="utf-8") != payload:  # keep the mtime when unchanged
        target.write_text(payload, encoding="utf-8")


if __name__ == "__main__":
    main()
