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
