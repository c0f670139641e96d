"""Config rules of evaluation and prediction runs, early stopping and `tunesmith eval` exams.

As in LLaMA-Factory, `do_train`, `do_eval` and `do_predict` say what a run does: a config that sets `do_eval` or
`do_predict` and not `do_train` evaluates (or predicts with) the model it names and trains nothing. A config
with none of the three trains (tunesmith's default).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .errors import ConfigError
from .schema import Config

Origins = dict[str, str]
EVALUATING_STAGES = ("sft", "pt")  # `do_eval` without training: the causal-LM loss and its metrics
ROLLOUT_STAGES = ("ppo", "grpo")


def _where(origins: Origins, *keys: str) -> str:
    return next((origins[key] for key in keys if key in origins), "config")


def trains(cfg: Config) -> bool:
    """Whether the run trains: `do_train` when given; otherwise unless `do_eval` or `do_predict` is set."""
    do_train = cfg.training.get("do_train")
    if do_train is not None:
        return bool(do_train)
    return not (cfg.training.get("do_eval") or cfg.training.get("do_predict"))


def evaluates(cfg: Config) -> bool:
    return bool(cfg.training.get("do_eval") or cfg.training.get("do_predict"))


def has_eval_data(cfg: Config) -> bool:
    return bool(cfg.data.eval_dataset) or (bool(cfg.data.dataset) and cfg.data.val_size > 0)


def trains_something(cfg: Config, origins: Origins) -> None:
    if not trains(cfg) and not evaluates(cfg):
        raise ConfigError(f"{_where(origins, 'do_train')}: `do_train` is false, so `tunesmith train` has nothing to "
                          "do; set `do_eval: true` (loss and metrics) or `do_predict: true` (generated replies) to "
                          "evaluate the model without training it")


def dataset_is_given(cfg: Config, origins: Origins) -> None:
    if trains(cfg) and not cfg.data.dataset:
        raise ConfigError("config: `dataset` is required: names from <dataset_dir>/dataset_info.json, comma-separated")
    if not trains(cfg) and not has_eval_data(cfg):
        what = "do_predict" if cfg.training.get("do_predict") else "do_eval"
        raise ConfigError(f"{_where(origins, what)}: `{what}` without training needs evaluation data: set "
                          "`eval_dataset` (names from <dataset_dir>/dataset_info.json), or `dataset` with `val_size`")


def evaluation_fits_stage(cfg: Config, origins: Origins) -> None:
    t, ev = cfg.training, cfg.evaluation
    if ev.predict_with_generate and cfg.stage != "sft":
        raise ConfigError(f"{_where(origins, 'predict_with_generate')}: `predict_with_generate` generates sft "
                          f"replies; stage {cfg.stage} cannot use it (evaluate with stage sft)")
    if t.get("do_predict") and not ev.predict_with_generate:
        raise ConfigError(f"{_where(origins, 'do_predict')}: `do_predict` writes generated replies; set "
                          "`predict_with_generate: true` (and stage sft)")
    if ev.predict_with_generate and cfg.finetuning.compute_accuracy:
        raise ConfigError(f"{_where(origins, 'compute_accuracy')}: `predict_with_generate` and `compute_accuracy` "
                          "cannot be used together (as in LLaMA-Factory); remove one")
    if ev.predict_with_generate and evaluates(cfg) and not has_eval_data(cfg):
        raise ConfigError(f"{_where(origins, 'do_predict', 'predict_with_generate')}: prediction needs evaluation "
                          "data: set `eval_dataset`, or `dataset` with `val_size`")
    if t.get("do_eval") and not trains(cfg) and cfg.stage not in EVALUATING_STAGES:
        raise ConfigError(f"{_where(origins, 'do_eval', 'stage')}: `do_eval` without training measures the "
                          f"causal-LM loss of stage sft or pt, not stage {cfg.stage}; set `stage: sft` (or train "
                          "with `eval_strategy` to evaluate this stage's loss)")
    if evaluates(cfg) and not trains(cfg) and cfg.data.streaming:
        raise ConfigError(f"{_where(origins, 'streaming')}: evaluation without training reads the evaluation data "
                          "into memory; remove `streaming: true`")


def early_stopping_fits(cfg: Config, origins: Origins) -> None:
    steps = cfg.evaluation.early_stopping_steps
    if steps is None:
        return
    where = _where(origins, "early_stopping_steps")
    if steps <= 0:
        raise ConfigError(f"{where}: `early_stopping_steps` must be a positive number of evaluations, got {steps}")
    if cfg.stage in ROLLOUT_STAGES:
        raise ConfigError(f"{where}: `early_stopping_steps` needs evaluations; stage {cfg.stage} has none")
    if not has_eval_data(cfg):
        raise ConfigError(f"{where}: `early_stopping_steps` counts evaluations; set `val_size` or `eval_dataset`")
    if cfg.training.get("eval_strategy", "no") == "no":
        raise ConfigError(f"{where}: `early_stopping_steps` counts evaluations, and `eval_strategy` is no; set "
                          "`eval_strategy: steps` (with `eval_steps`) or `epoch`")


def exam_is_given(cfg: Config, origins: Origins) -> None:
    ev = cfg.evaluation
    where = _where(origins, "task")
    if not ev.task:
        raise ConfigError(f"{where}: `task` is required: <folder>_<split> of an exam under `task_dir`, e.g. "
                          "mmlu_test (folders in the MMLU, CMMLU or C-Eval layout)")
    if "_" not in ev.task or not all(ev.task.rsplit("_", 1)):
        raise ConfigError(f"{where}: `task` must be <folder>_<split> (e.g. mmlu_test, ceval_validation, cmmlu_test); "
                          f"got {ev.task!r}")
    for key, value, low in (("n_shot", ev.n_shot, 0), ("batch_size", ev.batch_size, 1)):
        if value < low:
            raise ConfigError(f"{_where(origins, key)}: `{key}` must be >= {low}, got {value}")
    if ev.save_dir and Path(ev.save_dir).exists():
        raise ConfigError(f"{_where(origins, 'save_dir')}: `save_dir` {ev.save_dir} already exists; choose a new "
                          "folder (results are never written over)")


RULES: tuple[Callable[[Config, Origins], None], ...] = (evaluation_fits_stage, early_stopping_fits)
EXAM_RULES: tuple[Callable[[Config, Origins], None], ...] = (exam_is_given,)
