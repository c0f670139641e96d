"""One timed LLaMA-Factory preprocessing run (runs in LLaMA-Factory's venv, one fresh process per run).

    python time_lf.py CONFIG.yaml --cache-dir FRESH_DIR --out RESULT.json [--lengths LENGTHS.json]

CONFIG.yaml is the same training config tunesmith reads. HF datasets' cache goes to FRESH_DIR (it
must not exist yet) so nothing is reused; ``overwrite_cache: true`` in the config does the same for
the map() steps. Timed: ``get_dataset()`` as a whole (total), and inside it, by wrapping the
module-level functions it calls (nothing of LLaMA-Factory is copied or changed):
``load_dataset`` (JSON -> Arrow), ``align_dataset`` (convert to LF's standard format) and
``_get_preprocessed_dataset`` (template + tokenize + mask, a datasets.map).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--lengths", help="also write each example's (input, trained) token counts here")
    args = parser.parse_args()

    cache = Path(args.cache_dir)
    if cache.exists():
        sys.exit(f"cache dir {cache} already exists; pass a fresh one")
    os.environ["HF_DATASETS_CACHE"] = str(cache)  # before datasets is imported
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("DISABLE_VERSION_CHECK", "1")  # 0.9.5 pins older transformers/datasets ranges

    import yaml

    t_import = time.perf_counter()
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.data import loader as lf_loader
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer
    import_s = time.perf_counter() - t_import

    spent: dict[str, float] = {}

    def timed(module, name: str, key: str) -> None:
        inner = getattr(module, name)

        @functools.wraps(inner)
        def wrapper(*a, **kw):
            start = time.perf_counter()
            try:
                return inner(*a, **kw)
            finally:
                spent[key] = spent.get(key, 0.0) + time.perf_counter() - start

        setattr(module, name, wrapper)

    timed(lf_loader, "load_dataset", "load_s")
    timed(lf_loader, "align_dataset", "convert_s")
    timed(lf_loader, "_get_preprocessed_dataset", "tokenize_s")

    cfg = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    model_args, data_args, training_args, finetuning_args, _ = get_train_args(cfg)
    t0 = time.perf_counter()
    tokenizer = load_tokenizer(model_args)["tokenizer"]
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    tokenizer_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    module = get_dataset(template, model_args, data_args, training_args, stage=finetuning_args.stage,
                         tokenizer=tokenizer)
    total_s = time.perf_counter() - t0

    train = module["train_dataset"]
    input_lens = [len(ids) for ids in train["input_ids"]]
    trained = [sum(1 for x in labels if x != -100) for labels in train["labels"]]
    result = {
        "framework": "llamafactory",
        "workers": data_args.preprocessing_num_workers,
        "template": data_args.template,
        "import_s": import_s,
        "tokenizer_s": tokenizer_s,
        "total_s": total_s,
        **spent,
        "examples": len(input_lens),
        "tokens": sum(input_lens),
        "trained_tokens": sum(trained),
    }
    Path(args.out).write_text(json.dumps(result, indent=1), encoding="utf-8")
    if args.lengths:
        Path(args.lengths).write_text(json.dumps({"input": input_lens, "trained": trained}), encoding="utf-8")


if __name__ == "__main__":
    main()
