"""What to load for chat, api and export: the base model, the adapters in order, the tokenizer, the template
and the embedding size the adapters were trained with.

Given a training output dir alone, its run card (tunesmith.json) says everything: a LoRA run names its base
model and the adapters merged before training; a full/freeze run is the model itself. Given
``model_name_or_path`` + ``adapter_name_or_path`` (LLaMA-Factory style), the adapters' own run cards fill in
the template and the embedding size; without a card the size is read from the adapter weights.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..config.errors import ConfigError
from ..config.schema import Config
from ..model.peft_variants import refuse_residual_adapter
from ..utils.run_card import RUN_CARD  # written by training (train/save.py) and by export

logger = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


@dataclass
class ModelSource:
    base: str  # model_name_or_path of the weights to load first
    adapters: list[str] = field(default_factory=list)  # peft adapter dirs, merged in this order
    tokenizer_dir: str = ""  # the tokenizer that training saved (added tokens, chat template)
    template: str | None = None  # a template name; None: the tokenizer's chat_template
    data: dict = field(default_factory=dict)  # the training run's data options (enable_thinking, ...)
    embedding_rows: int | None = None  # resize the base to this many rows before applying adapters
    card: dict | None = None  # the run card of the output dir, when there is one


def read_card(path: str | Path) -> dict | None:
    file = Path(path) / RUN_CARD
    if not file.is_file():
        return None
    try:
        card = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{file}: invalid JSON ({err.msg}, line {err.lineno}); it is the run card that training "
                          "writes: restore it, or pass model_name_or_path and adapter_name_or_path") from None
    if not isinstance(card, dict):
        raise ConfigError(f"{file}: a run card must be a JSON object")
    return card


def has_tokenizer(path: str | Path) -> bool:
    return any((Path(path) / name).is_file() for name in TOKENIZER_FILES)


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def resolve_source(cfg: Config) -> ModelSource:
    path = cfg.model.model_name_or_path
    card = read_card(path) if Path(path).is_dir() else None
    if card is None and Path(path).is_dir() and is_adapter_dir(path):
        raise ConfigError(f"`model_name_or_path`: {path} holds a LoRA adapter without a tunesmith.json run card; "
                          "pass the base model as `model_name_or_path` and this folder as `adapter_name_or_path`")
    for checked in [path, *cfg.model.adapter_name_or_path]:
        head = (card if checked == path else read_card(checked) if Path(checked).is_dir() else None) or {}
        if head.get("model_head") == "score":
            raise ConfigError(f"{checked} is a reward model (stage rm: a score head, no language-model head), so it "
                              "cannot chat, serve or export as a chat model; score texts with "
                              "tunesmith.stages.rm.RewardModel.load(...) or use it as `reward_model` for ppo")
    source = ModelSource(base=path, tokenizer_dir=path, card=card)
    adapters = list(cfg.model.adapter_name_or_path)
    if card is not None:
        _apply_card(source, card)
        if card.get("is_adapter"):
            base = card.get("base_model")
            if not base:
                raise ConfigError(f"{Path(path) / RUN_CARD}: no `base_model` recorded for this adapter")
            if not Path(base).is_dir() and base.startswith(("/", ".")):
                raise ConfigError(f"{Path(path) / RUN_CARD} names the base model {base}, which is not here; pass it "
                                  f"explicitly: model_name_or_path=<base model dir> adapter_name_or_path={path}")
            source.base = base
            adapters = list(card.get("adapters_merged_before_training") or []) + [path] + adapters
    for adapter in adapters:
        if not Path(adapter).is_dir():
            raise ConfigError(f"`adapter_name_or_path`: {adapter} is not a directory")
        if not is_adapter_dir(adapter):
            raise ConfigError(f"`adapter_name_or_path`: {adapter} has no adapter_config.json, so it is not a peft "
                              "adapter (a full fine-tune goes in `model_name_or_path`)")
        refuse_residual_adapter(adapter)
        adapter_card = read_card(adapter)
        if adapter_card is not None and adapter != path:
            for earlier in adapter_card.get("adapters_merged_before_training") or []:
                if earlier not in source.adapters and earlier not in adapters:
                    source.adapters.append(earlier)  # training merged it first: so must we
            _apply_card(source, adapter_card)
        if has_tokenizer(adapter):
            source.tokenizer_dir = adapter  # saved by training: holds the added tokens and the chat template
        source.adapters.append(adapter)
    if source.adapters and source.embedding_rows is None:
        source.embedding_rows = max((adapter_embedding_rows(a) or 0) for a in source.adapters) or None
    if cfg.data.template:
        source.template = cfg.data.template
    return source


def _apply_card(source: ModelSource, card: dict) -> None:
    source.template = card.get("template") or source.template
    source.data = (card.get("config") or {}).get("data") or source.data
    if card.get("embedding_rows"):
        source.embedding_rows = int(card["embedding_rows"])


def adapter_embedding_rows(path: str | Path) -> int | None:
    """Rows of the full embedding (or head) matrices an adapter saved, if it saved any."""
    file = Path(path) / "adapter_model.safetensors"
    if not file.is_file():
        return None
    from safetensors import safe_open

    rows = None
    with safe_open(str(file), framework="pt") as handle:
        for key in handle.keys():
            if ("embed" in key or "lm_head" in key) and "lora_" not in key and "trainable_tokens" not in key:
                shape = handle.get_slice(key).get_shape()
                if len(shape) == 2:
                    rows = max(rows or 0, shape[0])
    return rows


def describe(source: ModelSource) -> str:
    parts = [f"base {source.base}"]
    if source.adapters:
        parts.append("adapters " + " -> ".join(source.adapters))
    parts.append(f"template {source.template or 'from the tokenizer'}")
    return ", ".join(parts)
