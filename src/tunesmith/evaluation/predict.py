"""`do_predict` with `predict_with_generate`: a reply generated for every evaluation example, written in order to
generated_predictions.jsonl (prompt, predict, label), scored with BLEU-4 and ROUGE-1/2/L (nlg.py) into
predict_results.json with the generation throughput.

The label is the reference reply as training trains it, without what a template writes after the end-of-turn
token: LLaMA-Factory's label also carries that text (ChatML's newline after `<|im_end|>`), which its BLEU then
counts against every prediction."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..config.schema import Config
from ..model.generation import generation_config
from .data import prompts_and_replies
from .generate import generate_batched
from .media import evaluation_media, generation_media
from .nlg import require_nlg_packages, similarity

logger = logging.getLogger(__name__)
PREDICTIONS = "generated_predictions.jsonl"
RESULTS = "predict_results.json"


def predict_generation_config(cfg: Config, stop_ids: list[int], pad_id: int):
    gen = cfg.generating
    return generation_config(do_sample=gen.do_sample, temperature=gen.temperature, top_p=gen.top_p, top_k=gen.top_k,
                             repetition_penalty=gen.repetition_penalty, stop_ids=stop_ids, pad_id=pad_id,
                             max_new_tokens=gen.max_new_tokens, max_length=gen.max_length, num_beams=gen.num_beams,
                             length_penalty=gen.length_penalty, use_cache=cfg.infer.use_kv_cache)


def predict(cfg: Config, loaded, output_dir: str | Path, batch_size: int | None = None) -> dict[str, float]:
    """Generate, write the predictions and the scores; returns predict_results.json's metrics."""
    import time

    from transformers import set_seed

    require_nlg_packages()
    tokenizer, model = loaded.tokenizer, loaded.model
    media = evaluation_media(cfg, loaded)
    examples = prompts_and_replies(cfg, tokenizer, loaded.template, media)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else loaded.stop_ids[0]
    config = predict_generation_config(cfg, loaded.stop_ids, pad_id)
    size = batch_size or cfg.training.get("per_device_eval_batch_size", 8)
    logger.info("predicting %d replies in batches of %d (%s)", len(examples), size,
                "sampling" if config.do_sample else "greedy")
    set_seed(cfg.training.get("seed", 42))
    start = time.perf_counter()
    out = generate_batched(model, [e.prompt for e in examples], config, size, pad_id, loaded.stop_ids,
                           progress=not cfg.training.get("disable_tqdm", False),
                           media_inputs=generation_media(media, examples) if media is not None else None)
    runtime = time.perf_counter() - start
    skip = cfg.generating.skip_special_tokens
    rows = [{"prompt": tokenizer.decode(e.prompt, skip_special_tokens=False),
             "predict": tokenizer.decode(reply, skip_special_tokens=skip),
             "label": tokenizer.decode(e.reply, skip_special_tokens=skip)} for e, reply in zip(examples, out.replies)]
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / PREDICTIONS).open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    scores = similarity([r["predict"] for r in rows], [r["label"] for r in rows])
    metrics = {f"predict_{key}": value for key, value in scores.items()}
    metrics.update(predict_runtime=round(runtime, 4), predict_samples_per_second=round(len(rows) / runtime, 3),
                   predict_generated_tokens=out.generated_tokens,
                   predict_tokens_per_second=round(out.generated_tokens / max(out.seconds, 1e-9), 3),
                   predict_batch_size=size)
    (out_dir / RESULTS).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    logger.info("predictions written to %s; %s", out_dir / PREDICTIONS,
                ", ".join(f"{k} {v}" for k, v in metrics.items()))
    return metrics
