"""Key names tunesmith knows: its own sections, transformers TrainingArguments and aliases. The LLaMA-Factory
options it deliberately does not implement are in unsupported.py, its v1 layout in v1_layout.py."""

from __future__ import annotations

from dataclasses import fields

from .hf_keys import HF_TRAINING_KEYS
from .schema import SECTIONS

# Old or alternative spellings -> canonical key. Values are moved before validation.
ALIASES: dict[str, str] = {
    "model_name": "model_name_or_path",
    "evaluation_strategy": "eval_strategy",
    "new_special_tokens": "add_special_tokens",  # LLaMA-Factory's older name
}

# Keys that are consumed while loading and translated into other keys.
TRANSLATED_KEYS = {"warmup_ratio"}


def section_keys() -> dict[str, str]:
    """Every tunesmith-section key -> its section name."""
    out: dict[str, str] = {}
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            out[f.name] = section
    return out


def all_valid_keys() -> set[str]:
    return set(section_keys()) | set(HF_TRAINING_KEYS) | set(ALIASES) | TRANSLATED_KEYS
