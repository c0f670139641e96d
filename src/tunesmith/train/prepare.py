"""The data half of a run, shared by `tunesmith train` and `tunesmith data preview`:
tokenizer (+ added tokens) -> template (checked against the tokenizer) -> encoded datasets of the stage's
data kind, packed as the run plan says."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..config.errors import ConfigError
from ..config.schema import Config
from ..data.media_context import MediaContext
from ..data.kinds import get_kind
from ..data.load import TrainingData, load_training_data
from ..model.load import load_tokenizer
from ..model.tokens import AddedTokens, add_to_tokenizer
from ..stages.base import Stage
from ..templates.base import Template
from ..templates.jinja import to_jinja
from ..templates.special_tokens import fix_special_tokens
from ..templates.resolve import resolve_template
from .plan import RunPlan

logger = logging.getLogger(__name__)


def fix_template_tokens(template, tokenizer, added: AddedTokens) -> None:
    """The template's special-token settings (its EOS, stop words as special tokens), as LLaMA-Factory applies
    them; a token this adds gets a new, initialised embedding row like any added token."""
    before = len(tokenizer)
    for change in fix_special_tokens(template, tokenizer):
        logger.info("template %s: %s", template.name, change)
    new = {token: i for token, i in tokenizer.get_added_vocab().items() if i >= before}
    added.ids.update(new)
    added.new_ids = sorted({*added.new_ids, *new.values()})


@dataclass
class Prepared:
    tokenizer: object
    added: AddedTokens
    template: object | None
    data: TrainingData
    media: MediaContext | None = None  # a vision-language model's plugin and media folder


def media_context(cfg: Config, template, tokenizer) -> MediaContext | None:
    """The vision plugin of a vision-language model (None for a text model): its processor, with the
    template's multimodal plugin and the media keys; relative media paths are read from media_dir, else
    dataset_dir."""
    from ..data.media.plugin import get_plugin
    from ..data.media.settings import MediaSettings
    from ..model.load import model_path
    from ..model.processor import load_processor
    from ..model.vision import COMPOSITE, is_vision_language, model_type

    path = model_path(cfg.model)
    if not is_vision_language(path):
        return None
    plugin_name = template.mm_plugin if isinstance(template, Template) else ""
    if not plugin_name:
        name = template.name if isinstance(template, Template) else "the tokenizer's own chat template"
        raise ConfigError(f"{path} is a vision-language model ({model_type(path)}) but template `{name}` renders text "
                          f"only: set `template: {COMPOSITE[model_type(path)].templates}`")
    processor = load_processor(path, tokenizer)
    plugin = get_plugin(plugin_name, processor, MediaSettings.from_mapping(cfg.media))
    return MediaContext(plugin, cfg.media.media_dir or cfg.data.dataset_dir)


def prepare(cfg: Config, stage: Stage, plan: RunPlan) -> Prepared:
    tokenizer = load_tokenizer(cfg.model)
    added = add_to_tokenizer(tokenizer, cfg.tokens)  # before encoding: new tokens must encode as one id
    kind = get_kind(stage.data_kind)
    template = None
    if kind.needs_template:
        template = resolve_template(cfg.data.template, tokenizer).configure(
            enable_thinking=cfg.data.enable_thinking, tool_format=cfg.data.tool_format)
        template.check_fits(tokenizer)
        fix_template_tokens(template, tokenizer, added)
        tokenizer.chat_template = to_jinja(template)  # saved with the model: chat uses the training format
    hub = {"cache_dir": cfg.model.cache_dir, "token": cfg.model.hf_hub_token}
    media = media_context(cfg, template, tokenizer)
    data = load_training_data(cfg.data, kind, tokenizer, template, plan.seed, pack=plan.pack, hub=hub, media=media)
    return Prepared(tokenizer, added, template, data, media)


def prepare_as_planned(cfg: Config) -> Prepared:
    """The data exactly as a run of this config would train on it (`tunesmith data preview`)."""
    from ..stages.registry import get_stage
    from .plan import make_plan

    stage = get_stage(cfg.stage)
    return prepare(cfg, stage, make_plan(cfg, stage))
