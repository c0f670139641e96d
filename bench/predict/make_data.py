"""Deterministic alpaca evaluation set for the predict benchmark: N instructions of varied length (prompts
~10-120 tokens), written with a dataset_info.json entry `bench_predict` in a LLaMA-Factory-style data folder."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

WORDS = ("model data train token batch layer weight answer question value river stone cloud light green "
         "apple window garden music paper signal number letter system memory").split()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = []
    for i in range(args.n):
        prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 90)))
        reply = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40)))
        rows.append({"instruction": f"Summarise item {i}: {prompt}", "input": "", "output": reply})
    data = Path(args.root) / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "bench_predict.json").write_text(json.dumps(rows), encoding="utf-8")
    (data / "dataset_info.json").write_text(json.dumps({"bench_predict": {"file_name": "bench_predict.json"}}),
                                            encoding="utf-8")


if __name__ == "__main__":
    main()
