"""The practical limit: bare ``tokenizers`` batch encoding of the rendered examples (tunesmith's venv).

    RAYON_NUM_THREADS=N python time_encode.py CONFIG.yaml --out RESULT.json

Each example is rendered to its full text (prompt + response through the config's template, with
tunesmith's renderer) *before* timing; then ``encode_batch`` and ``encode_batch_fast`` (no offsets)
of the Rust tokenizer are timed over all of them, without special tokens added. No reading, no
conversion, no truncation or masks: what remains is the tokenizer itself, on the tokenizer's Rayon
thread pool (RAYON_NUM_THREADS threads; all cores when unset). Also timed: ``encode_batch_fast`` over
the prompt and response texts as separate strings (what a pipeline that masks the prompt encodes)
and copying those ids into Python lists.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def load_template(cfg, tokenizer):
    """The template as `tunesmith train` resolves it (older versions: the builtin by name)."""
    try:
        from tunesmith.templates.resolve import resolve_template
    except ImportError:
        from tunesmith.templates.builtin import get_template

        return get_template(cfg.data.template)
    return resolve_template(cfg.data.template, tokenizer).configure(
        enable_thinking=cfg.data.enable_thinking, tool_format=cfg.data.tool_format)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.environ["TOKENIZERS_PARALLELISM"] = "true"  # false would make encode_batch run serially

    from tunesmith.config.load import load_config
    from tunesmith.data.files import load_rows
    from tunesmith.data.formats import to_conversation
    from tunesmith.data.registry import get_dataset_attrs
    from tunesmith.model.load import load_tokenizer
    from tunesmith.utils.logging import offline_environment

    offline_environment()
    cfg = load_config([args.config])
    tokenizer = load_tokenizer(cfg.model)
    template = load_template(cfg, tokenizer)
    bos, eos = tokenizer.bos_token or "", tokenizer.eos_token or ""
    texts: list[str] = []  # one full text per example
    pieces: list[str] = []  # prompt and response texts apart, as a masking pipeline must encode them
    for attr in get_dataset_attrs(cfg.data.dataset, cfg.data.dataset_dir):
        for i, row in enumerate(load_rows(attr)):
            turns = template.turns(to_conversation(attr, row, i), bos, eos, cfg.data.default_system)
            texts.append("".join(prompt + response for prompt, response in turns))
            pieces += [text for pair in turns for text in pair]
    backend = tokenizer.backend_tokenizer

    result = {"examples": len(texts), "chars": sum(map(len, texts)),
              "rayon_threads": os.environ.get("RAYON_NUM_THREADS", "default")}
    for name in ("encode_batch", "encode_batch_fast"):
        method = getattr(backend, name)
        t0 = time.perf_counter()
        encodings = method(texts, add_special_tokens=False)
        result[f"{name}_s"] = time.perf_counter() - t0
        result[f"{name}_tokens"] = sum(len(e.ids) for e in encodings)
        del encodings
    # The same, split into prompt and response strings, and with the ids copied into Python lists:
    # the least any pipeline that masks prompts has to do.
    t0 = time.perf_counter()
    encodings = backend.encode_batch_fast(pieces, add_special_tokens=False)
    result["split_encode_batch_fast_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ids = [e.ids for e in encodings]
    result["split_ids_s"] = time.perf_counter() - t0
    result["split_strings"], result["split_tokens"] = len(pieces), sum(map(len, ids))
    Path(args.out).write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
