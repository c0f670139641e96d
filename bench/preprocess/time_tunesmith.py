"""One timed tunesmith preprocessing run (runs in tunesmith's venv, one fresh process per run).

    python time_tunesmith.py CONFIG.yaml --cache-dir FRESH_DIR --out RESULT.json
                             [--lengths LENGTHS.json] [--profile PROFILE.txt]

CONFIG.yaml is the same training config LLaMA-Factory reads. The data half of a run goes through the
same code `tunesmith train` uses (``tunesmith.train.prepare.prepare``: tokenizer, template, data);
timed is the ``load_training_data()`` call inside it: read the JSON, align to conversations,
render the template, tokenize, truncate, mask, and write the tokenized-data cache (to FRESH_DIR via
TUNESMITH_CACHE_DIR; ``overwrite_cache: true`` makes sure nothing is read from a cache).
``preprocessing_num_workers`` is applied as the CLI applies it (``offline_environment``).

For a rough breakdown, a few module-level functions are wrapped when they exist (reading the file,
the tokenizer calls, the cache key and the cache write); work a future version moves into worker
processes is not seen by these wrappers (the total still is). With ``--profile`` the timed call runs
under cProfile and the top entries by cumulative time are written.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

SPENT: dict[str, float] = {}


def timed(module, name: str, key: str) -> None:
    """Replace ``module.name`` by a wrapper that adds its run time to SPENT[key] (if it exists)."""
    inner = getattr(module, name, None)
    if inner is None:
        return

    @functools.wraps(inner)
    def wrapper(*a, **kw):
        start = time.perf_counter()
        try:
            return inner(*a, **kw)
        finally:
            SPENT[key] = SPENT.get(key, 0.0) + time.perf_counter() - start

    setattr(module, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--lengths", help="also write each example's (input, trained) token counts here")
    parser.add_argument("--profile", help="run under cProfile; write the top entries (by cumtime) here")
    args = parser.parse_args()
    if Path(args.cache_dir).exists():
        sys.exit(f"cache dir {args.cache_dir} already exists; pass a fresh one")
    os.environ["TUNESMITH_CACHE_DIR"] = args.cache_dir

    from tunesmith.config.load import load_config
    from tunesmith.data import cache as ts_cache
    from tunesmith.data import encode as ts_encode
    from tunesmith.data import load as ts_load
    from tunesmith.types import IGNORE_INDEX
    from tunesmith.utils.logging import offline_environment, setup_logging

    cfg = load_config([args.config])
    try:
        offline_environment(cfg.data.preprocessing_num_workers)  # as the CLI does: sizes the tokenizer's threads
    except TypeError:  # older tunesmith: no worker argument
        offline_environment()
    setup_logging()  # tunesmith's per-dataset summary line goes to stderr (the run's log)

    timed(ts_load, "load_rows", "read_s")  # load.py calls these by the names it imported
    timed(ts_encode, "tokenize_texts", "tokenize_s")
    timed(ts_cache, "cache_key", "cache_key_s")
    timed(ts_cache, "save", "cache_write_s")

    data_call: dict = {}

    def measure(load_training_data):
        """Wrap load_training_data: time it (under cProfile with --profile) and keep its result."""

        @functools.wraps(load_training_data)
        def wrapper(*a, **kw):
            start = time.perf_counter()
            if args.profile:
                import cProfile

                profiler = cProfile.Profile()
                result = profiler.runcall(load_training_data, *a, **kw)
                data_call["profiler"] = profiler
            else:
                result = load_training_data(*a, **kw)
            data_call["total_s"] = time.perf_counter() - start
            data_call["data"] = result
            return result

        return wrapper

    t0 = time.perf_counter()
    try:
        from tunesmith.train import prepare as ts_prepare
    except ImportError:  # older tunesmith: assemble the data half by hand
        from tunesmith.model.load import load_tokenizer
        from tunesmith.stages.base import get_stage
        from tunesmith.templates.builtin import get_template

        tokenizer, stage = load_tokenizer(cfg.model), get_stage(cfg.stage)
        measure(ts_load.load_training_data)(cfg.data, stage, tokenizer, get_template(cfg.data.template),
                                            seed=int(cfg.training.get("seed", 42)))
    else:
        ts_prepare.load_training_data = measure(ts_prepare.load_training_data)
        ts_prepare.prepare_as_planned(cfg)
    setup_s = time.perf_counter() - t0 - data_call["total_s"]

    if args.profile:
        import io
        import pstats

        buf = io.StringIO()
        pstats.Stats(data_call["profiler"], stream=buf).sort_stats("cumulative").print_stats(40)
        Path(args.profile).write_text(buf.getvalue(), encoding="utf-8")

    train = data_call["data"].train
    input_lens = [len(ex.input_ids) for ex in train]
    trained = [sum(1 for x in ex.labels if x != IGNORE_INDEX) for ex in train]
    result = {
        "framework": "tunesmith",
        "workers": cfg.data.preprocessing_num_workers,
        "rayon_threads": os.environ.get("RAYON_NUM_THREADS", "default"),
        "template": cfg.data.template,
        "setup_s": setup_s,  # tokenizer + template, not timed
        "total_s": data_call["total_s"],
        **SPENT,
        "profiled": bool(args.profile),
        "examples": len(input_lens),
        "tokens": sum(input_lens),
        "trained_tokens": sum(trained),
    }
    Path(args.out).write_text(json.dumps(result, indent=1), encoding="utf-8")
    if args.lengths:
        Path(args.lengths).write_text(json.dumps({"input": input_lens, "trained": trained}), encoding="utf-8")


if __name__ == "__main__":
    main()
