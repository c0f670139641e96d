"""The config keys a command reads, for `tunesmith COMMAND --help`: grouped by section, with defaults, choices and
help text, generated from the schema (schema.py), the TrainingArguments table (hf_keys.py) and the tables of
aliases and unsupported LLaMA-Factory options. Nothing here imports torch or transformers."""

from __future__ import annotations

import textwrap
from dataclasses import MISSING, fields
from typing import Any

from .hf_keys import HF_TRAINING_KEYS, TRANSFORMERS_VERSION
from .keys import ALIASES
from .load import HF_CHOICES
from .schema import SECTIONS
from .unsupported import UNSUPPORTED
from .v1_layout import V1_KEYS

WIDTH = 100
TRAINING_ARGUMENTS_DOCS = "https://huggingface.co/docs/transformers/main_classes/trainer#transformers.TrainingArguments"

# A command reads whole sections, or only some keys of a section: (section, keys or None for all).
Sections = tuple[tuple[str, tuple[str, ...] | None], ...]
PROMPT_KEYS = ("template", "default_system", "enable_thinking", "tool_format")  # how prompts are rendered
MEDIA_KEYS = ("image_max_pixels", "image_min_pixels", "video_max_pixels", "video_min_pixels", "video_fps",
              "video_maxlen")
TRAIN_SECTIONS: Sections = tuple((name, None) for name in ("model", "data", "finetuning", "tokens", "media",
                                                           "preference", "ppo", "grpo", "speed", "run",
                                                           "generating", "evaluation"))
DATA_SECTIONS: Sections = tuple((name, None) for name in ("model", "data", "finetuning", "tokens", "media"))
CHAT_SECTIONS: Sections = (("model", None), ("data", PROMPT_KEYS), ("media", MEDIA_KEYS), ("infer", None),
                           ("generating", None))
API_SECTIONS: Sections = CHAT_SECTIONS + (("api", None),)
EXPORT_SECTIONS: Sections = (("model", None), ("data", PROMPT_KEYS), ("infer", ("infer_dtype",)), ("export", None))


def show_default(value: Any) -> str:
    """A default as it is written in a config."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value)) if value else "(empty)"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) if value else "(empty)"
    return str(value)


def _default(f: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not MISSING else None


def section_title(name: str) -> str:
    """`name keys`, with the first sentence of the section's docstring when it has one."""
    doc = (SECTIONS[name].__doc__ or "").strip()
    if not doc or doc.startswith(SECTIONS[name].__name__ + "("):  # dataclass's generated signature
        return f"{name} keys:"
    return f"{name} keys: {' '.join(doc.split()).split('. ')[0].rstrip('.')}"


def _wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False)


def section_help(name: str, only: tuple[str, ...] | None = None) -> list[str]:
    lines = _wrap(section_title(name) + (" (the ones read here)" if only is not None else ""), "")
    for f in fields(SECTIONS[name]):
        if only is not None and f.name not in only:
            continue
        head = f"  {f.name} = {show_default(_default(f))}"
        if f.metadata.get("choices"):
            head += f"  ({' | '.join(f.metadata['choices'])})"
        elif f.metadata.get("list"):
            head += "  (comma-separated)"
        lines.append(head)
        lines += _wrap(f.metadata.get("help", ""), "      ")
    return lines


def training_arguments_help() -> list[str]:
    names = [f"{key} ({' | '.join(HF_CHOICES[key])})" if key in HF_CHOICES else key for key in HF_TRAINING_KEYS]
    lines = _wrap(f"transformers TrainingArguments keys ({len(HF_TRAINING_KEYS)}, transformers "
                  f"{TRANSFORMERS_VERSION}; defaults and meaning: {TRAINING_ARGUMENTS_DOCS}):", "")
    lines += _wrap(", ".join(names), "  ")
    return lines


def other_keys_help() -> list[str]:
    aliases = ", ".join(f"{old} (= {new})" for old, new in ALIASES.items())
    text = [f"Also read: {aliases}; warmup_ratio (a fraction of the steps, given to transformers as warmup_steps "
            "< 1).",
            f"{len(UNSUPPORTED)} LLaMA-Factory options that tunesmith does not implement (GaLore, Megatron, Ray, "
            "KTransformers, quantisation, ...) fail with what they are and what to use instead; left off (false / "
            f"null) they are accepted. LLaMA-Factory's v1 layout ({len(V1_KEYS)} keys such as model:, peft_config:, "
            "dist_config:, micro_batch_size:) is answered key by key with these v0 keys.",
            "Lists are comma-separated; yes/no/on/off are text for keys that take text (save_strategy: no) and "
            "true/false for switches."]
    return [line for paragraph in text for line in _wrap(paragraph, "")]


def keys_help(sections: Sections, training_arguments: bool = False) -> str:
    blocks = [section_help(name, only) for name, only in sections]
    if training_arguments:
        blocks.append(training_arguments_help())
    blocks.append(other_keys_help())
    return "\n\n".join("\n".join(block) for block in blocks)
