"""The evaluation examples of a config, encoded as training encodes them: `eval_dataset`, or the `val_size`
split of `dataset` (the same split a training run holds out); and, for prediction, each example cut into its
prompt (everything before the last reply) and that reply."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..config.errors import ConfigError
from ..config.schema import Config
from ..data.kinds import get_kind
from ..data.load import load_part, load_training_data
from ..data.registry import get_dataset_attrs
from ..types import IGNORE_INDEX


def refuse_vision_language(cfg: Config) -> None:
    """Evaluation and prediction here read text; a vision-language model's media are not passed to them yet."""
    from ..model.load import model_path
    from ..model.vision import is_vision_language

    if cfg.model.model_name_or_path and is_vision_language(model_path(cfg.model)):
        raise ConfigError(f"{cfg.model.model_name_or_path} is a vision-language model: `tunesmith eval`, do_predict "
                          "and do_eval without do_train do not pass images to it yet; evaluate during training "
                          "(do_train with val_size or eval_dataset), or chat / serve it with images")


def evaluation_examples(cfg: Config, kind_name: str, tokenizer, template, data=None) -> list:
    refuse_vision_language(cfg)
    data = data or cfg.data
    kind = get_kind(kind_name)
    seed = cfg.training.get("seed", 42)
    hub = {"cache_dir": cfg.model.cache_dir, "token": cfg.model.hf_hub_token}
    if data.eval_dataset:
        return [ex for attr in get_dataset_attrs(data.eval_dataset, data.dataset_dir)
                for ex in load_part(attr, kind, tokenizer, template, data, seed, hub).examples]
    held_out = load_training_data(data, kind, tokenizer, template, seed, pack=False, hub=hub).eval
    if not held_out:
        raise ConfigError("config: no evaluation examples: set `eval_dataset`, or `dataset` with `val_size` > 0")
    return held_out


@dataclass
class PromptAndReply:
    prompt: list[int]  # the template's prompt up to the assistant header of the last reply
    reply: list[int]  # the reference reply's trained tokens (its end-of-turn token included)


def prompts_and_replies(cfg: Config, tokenizer, template) -> list[PromptAndReply]:
    """Each evaluation example's prompt and reference reply, in dataset order. Encoded with `mask_history`
    (only the last reply trained), so the trained span is exactly the reply to predict."""
    data = replace(cfg.data, train_on_prompt=False, mask_history=True, packing=False, neat_packing=False)
    out = []
    for example in evaluation_examples(cfg, "supervised", tokenizer, template, data):
        trained = [i for i, label in enumerate(example.labels) if label != IGNORE_INDEX]
        start = trained[0]
        out.append(PromptAndReply(list(example.input_ids[:start]),
                                  [t for t in example.labels[start:] if t != IGNORE_INDEX]))
    return out
