"""The static TrainingArguments table must match the installed transformers (regenerate if not)."""

from __future__ import annotations

import dataclasses

from tunesmith.config.hf_keys import HF_TRAINING_KEYS, TRANSFORMERS_VERSION


def test_table_matches_installed_transformers():
    import transformers
    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments) if f.init and not f.name.startswith("_")}
    assert set(HF_TRAINING_KEYS) == names, (
        f"hf_keys.py was generated for transformers {TRANSFORMERS_VERSION}, installed is "
        f"{transformers.__version__}: run scripts/gen_hf_training_keys.py")


def test_name_keys_and_choices_follow_transformers():
    """Keys annotated `<Enum> | str` keep yes/no as text (load.HF_NAME_KEYS); their checked choices are the
    enum's values."""
    import enum
    import typing

    from transformers import TrainingArguments

    from tunesmith.config.load import HF_CHOICES, HF_NAME_KEYS

    hints = typing.get_type_hints(TrainingArguments)
    enum_or_text = {name for name, tp in hints.items() if name in HF_TRAINING_KEYS and str in typing.get_args(tp)
                    and any(isinstance(a, type) and issubclass(a, enum.Enum) for a in typing.get_args(tp))}
    assert enum_or_text <= set(HF_NAME_KEYS)
    for key in HF_NAME_KEYS:
        assert str in typing.get_args(hints[key]) or hints[key] is str, key
    for key, choices in HF_CHOICES.items():
        members = [a for a in typing.get_args(hints[key]) if isinstance(a, type) and issubclass(a, enum.Enum)]
        assert members and tuple(m.value for m in members[0]) == choices, key
