"""The data half of a run, shared by `tunesmith train` and `tunesmith data preview`:
tokenizer -> template (checked against the tokenizer) -> encoded datasets."""

from __future__ import annotations

from dataclasses import dataclass

from ..config.schema import Config
from ..data.load import TrainingData, load_training_data
from ..model.load import load_tokenizer
from ..model.tokens import AddedTokens, add_to_tokenizer
from ..stages.base import Stage, get_stage
from ..templates.resolve import resolve_template
from ..templates.jinja import to_jinja


@dataclass
class Prepared:
    tokenizer: object
    added: AddedTokens
    stage: Stage
    template: object | None
    data: TrainingData


def prepare(cfg: Config) -> Prepared:
    tokenizer = load_tokenizer(cfg.model)
    added = add_to_tokenizer(tokenizer, cfg.tokens)  # before encoding: new tokens must encode as one id
    stage = get_stage(cfg.stage)
    template = None
    if stage.needs_template:
        template = resolve_template(cfg.data.template, tokenizer).configure(
            enable_thinking=cfg.data.enable_thinking, tool_format=cfg.data.tool_format)
        template.check_fits(tokenizer)
        tokenizer.chat_template = to_jinja(template)  # saved with the model: chat uses the training format
    seed = int(cfg.training.get("seed", 42))
    data = load_training_data(cfg.data, stage, tokenizer, template, seed)
    return Prepared(tokenizer, added, stage, template, data)
