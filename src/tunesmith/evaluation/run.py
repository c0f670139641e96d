"""`tunesmith train` as LLaMA-Factory's train command reads `do_train`, `do_eval` and `do_predict`: train (when
the config trains), then evaluate (`do_eval`: eval_results.json) and predict (`do_predict`:
generated_predictions.jsonl, predict_results.json) with the trained model, or with the model the config names
when it does not train."""

from __future__ import annotations

import logging
import os
from dataclasses import replace

from ..config.rules_evaluation import EVALUATING_STAGES, evaluates, trains
from ..config.schema import Config

logger = logging.getLogger(__name__)


def run(cfg: Config) -> dict[str, float]:
    """Returns the evaluation and prediction metrics (empty when the config only trains)."""
    model_cfg = cfg
    if trains(cfg):
        from ..train.run import run_training

        result = run_training(cfg)
        model_cfg = replace(cfg, model=replace(cfg.model, model_name_or_path=str(result.output_dir),
                                               adapter_name_or_path=()))
    else:
        logger.info("`do_train` is not set: evaluating %s without training it", cfg.model.model_name_or_path)
    if not evaluates(cfg):
        return {}
    return evaluate_model(cfg, model_cfg, after_training=trains(cfg))


def evaluate_model(cfg: Config, model_cfg: Config, after_training: bool = False) -> dict[str, float]:
    from ..infer.load import load_for_inference
    from ..stages.registry import get_stage
    from ..train.setup import writable_output_dir
    from .measure import measure
    from .nlg import require_nlg_packages
    from .predict import predict

    do_eval = bool(cfg.training.get("do_eval")) and cfg.stage in EVALUATING_STAGES
    if cfg.training.get("do_eval") and not do_eval:
        logger.info("do_eval: stage %s reports its evaluation metrics during training (eval_strategy); no final "
                    "causal-LM evaluation", cfg.stage)
    do_predict = bool(cfg.training.get("do_predict"))
    if not (do_eval or do_predict):
        return {}
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: the first process evaluates, the others are done
        return {}
    if do_predict:
        require_nlg_packages()  # before the model loads
    writable_output_dir(cfg.output_dir)
    loaded = load_for_inference(model_cfg)
    metrics: dict[str, float] = {}
    if do_eval:
        metrics.update(measure(cfg, loaded, cfg.output_dir, get_stage(cfg.stage).data_kind))
    if do_predict:
        metrics.update(predict(cfg, loaded, cfg.output_dir))
    return metrics
