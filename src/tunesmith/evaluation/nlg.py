"""BLEU-4 and ROUGE-1/2/L of generated replies, as LLaMA-Factory's ComputeSimilarity defines them: per example,
ROUGE F-scores (rouge-chinese) over jieba words joined by spaces, and sentence BLEU-4 (nltk, smoothing method 3)
over characters; each x100, rounded to 4 places, then averaged over the examples."""

from __future__ import annotations

import logging

from ..config.errors import ConfigError

KEYS = ("bleu-4", "rouge-1", "rouge-2", "rouge-l")


def require_nlg_packages() -> None:
    """jieba, nltk and rouge-chinese, checked before any model loads."""
    import importlib.util

    missing = [name for name, module in (("jieba", "jieba"), ("nltk", "nltk"), ("rouge-chinese", "rouge_chinese"))
               if importlib.util.find_spec(module) is None]
    if missing:
        raise ConfigError(f"`predict_with_generate` scores replies with BLEU and ROUGE, which need {', '.join(missing)}; "
                          "install them with `pip install 'tunesmith[eval]'`")


def example_scores(predict: str, label: str) -> dict[str, float]:
    """One example's scores (x100, 4 places)."""
    import jieba
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from rouge_chinese import Rouge

    jieba.setLogLevel(logging.WARNING)
    hypothesis, reference = list(jieba.cut(predict)), list(jieba.cut(label))
    scores: dict[str, float] = {}
    if not " ".join(hypothesis).split() or not " ".join(reference).split():
        scores.update({"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0})
    else:
        result = Rouge().get_scores(" ".join(hypothesis), " ".join(reference))[0]
        scores.update({key: round(value["f"] * 100, 4) for key, value in result.items()})
    bleu = sentence_bleu([list(label)], list(predict), smoothing_function=SmoothingFunction().method3)
    scores["bleu-4"] = round(bleu * 100, 4)
    return scores


def similarity(predicts: list[str], labels: list[str]) -> dict[str, float]:
    """Mean of each score over the examples (LLaMA-Factory's `predict_bleu-4`, `predict_rouge-1`, ... without the
    prefix)."""
    if len(predicts) != len(labels):
        raise ValueError(f"{len(predicts)} predictions for {len(labels)} labels")
    per_example = [example_scores(p, l) for p, l in zip(predicts, labels)]
    n = max(len(per_example), 1)
    return {key: sum(s[key] for s in per_example) / n for key in KEYS}
