"""`do_eval` on a model: the evaluation loss, perplexity, `compute_accuracy`'s token accuracy and the
special-token precision / recall / F1 that training reports at its evaluations, over the same examples and
computed the same way (eval_loss: each batch's mean over its trained tokens, averaged over the batches weighted by
their example counts, as transformers' Trainer averages it). A vision-language model's batches carry their
images' and videos' vision inputs, as training's evaluation batches do (data/collate_media.py)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from ..config.schema import Config
from ..data.collate import Collator
from ..model.tokens import AddedTokens
from ..train.token_metrics import special_token_f1, token_accuracy
from ..train.token_training import monitored_tokens
from ..types import IGNORE_INDEX
from .data import evaluation_examples
from .media import evaluation_media

logger = logging.getLogger(__name__)
RESULTS = "eval_results.json"


def monitored(cfg: Config, tokenizer, card: dict | None) -> dict[str, int]:
    """The special tokens training monitored: those it added (its run card) and those this config names."""
    added = AddedTokens(ids=dict((card or {}).get("added_tokens") or {}))
    return monitored_tokens(tokenizer, added, cfg.tokens)


def measure(cfg: Config, loaded, output_dir: str | Path, kind_name: str) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    tokenizer, model = loaded.tokenizer, loaded.model
    media = evaluation_media(cfg, loaded)
    examples = evaluation_examples(cfg, kind_name, tokenizer, loaded.template, media=media)
    special = monitored(cfg, tokenizer, loaded.source.card)
    size = cfg.training.get("per_device_eval_batch_size", 8)
    collate = Collator(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    if media is not None:
        from ..data.collate_media import MediaCollator

        collate = MediaCollator(collate, media)
    device = next(model.parameters()).device
    loss_sum, counted, preds, labels = 0.0, 0, [], []
    with torch.inference_mode():
        for start in range(0, len(examples), size):
            batch = collate([e.item() for e in examples[start:start + size]])
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            target = batch.pop("labels")
            logits = model(**batch).logits
            shifted = target[:, 1:]
            ce = sum(F.cross_entropy(logits[i, :-1].float(), shifted[i], ignore_index=IGNORE_INDEX, reduction="sum")
                     for i in range(len(logits)))  # one row in float32 at a time
            trained = int((shifted != IGNORE_INDEX).sum())
            rows = target.shape[0]
            if trained:
                loss_sum, counted = loss_sum + float(ce) / trained * rows, counted + rows
            preds += list(logits.argmax(-1).cpu())
            labels += list(target.cpu())
    width = max(len(p) for p in preds)
    pred_ids = torch.stack([F.pad(p, (0, width - len(p)), value=0) for p in preds])
    label_ids = torch.stack([F.pad(t, (0, width - len(t)), value=IGNORE_INDEX) for t in labels])
    loss = loss_sum / max(counted, 1)
    metrics = {"eval_loss": round(loss, 4), "eval_perplexity": round(math.exp(min(loss, 700)), 4),
               "eval_samples": len(examples)}
    if cfg.finetuning.compute_accuracy:
        metrics["eval_accuracy"] = token_accuracy(pred_ids, label_ids)
    if special:
        metrics.update({f"eval_{k}": v for k, v in special_token_f1(pred_ids, label_ids, special).items()})
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    logger.info("evaluation of %d examples: %s", len(examples), ", ".join(f"{k} {v}" for k, v in metrics.items()))
    return metrics
