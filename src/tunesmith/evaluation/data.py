"""The evaluation examples of a config, encoded as training encodes them: `eval_dataset`, or the `val_size`
split of `dataset` (the same split a training run holds out); and, for prediction, each example cut into its
prompt (everything before the last reply) and that reply.

A vision-language model's examples are expanded through its vision plugin (``media``: evaluation/media.py) as
training expands them, and keep their images and videos; rows with media given to a text model are refused by
row (data/media_context.py)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..config.errors import ConfigError
from ..config.schema import Config
from ..data.kinds import get_kind
from ..data.load import load_part, load_training_data
from ..data.media_context import MediaContext
from ..data.registry import get_dataset_attrs
from ..types import IGNORE_INDEX


def evaluation_examples(cfg: Config, kind_name: str, tokenizer, template, data=None,
                        media: MediaContext | None = None) -> list:
    data = data or cfg.data
    kind = get_kind(kind_name)
    seed = cfg.training.get("seed", 42)
    hub = {"cache_dir": cfg.model.cache_dir, "token": cfg.model.hf_hub_token}
    if data.eval_dataset:
        return [ex for attr in get_dataset_attrs(data.eval_dataset, data.dataset_dir)
                for ex in load_part(attr, kind, tokenizer, template, data, seed, hub, media).examples]
    held_out = load_training_data(data, kind, tokenizer, template, seed, pack=False, hub=hub, media=media).eval
    if not held_out:
        raise ConfigError("config: no evaluation examples: set `eval_dataset`, or `dataset` with `val_size` > 0")
    return held_out


@dataclass
class PromptAndReply:
    prompt: list[int]  # the template's prompt up to the assistant header of the last reply
    reply: list[int]  # the reference reply's trained tokens (its end-of-turn token included)
    images: list = field(default_factory=list)  # the prompt's media, in vision-token order
    videos: list = field(default_factory=list)


def prompts_and_replies(cfg: Config, tokenizer, template, media: MediaContext | None = None) -> list[PromptAndReply]:
    """Each evaluation example's prompt and reference reply, in dataset order. Encoded with `mask_history`
    (only the last reply trained), so the trained span is exactly the reply to predict."""
    data = replace(cfg.data, train_on_prompt=False, mask_history=True, packing=False, neat_packing=False)
    out = []
    for n, example in enumerate(evaluation_examples(cfg, "supervised", tokenizer, template, data, media)):
        trained = [i for i, label in enumerate(example.labels) if label != IGNORE_INDEX]
        start = trained[0]
        prompt = list(example.input_ids[:start])
        if media is not None and media.count(prompt) != media.count(example.input_ids):
            raise ConfigError(f"evaluation example {n}: its last reply holds an image or video placeholder; "
                              "prediction generates that reply from the prompt, so media may only stand in the "
                              "prompt's messages")
        out.append(PromptAndReply(prompt, [t for t in example.labels[start:] if t != IGNORE_INDEX],
                                  list(example.images), list(example.videos)))
    return out
