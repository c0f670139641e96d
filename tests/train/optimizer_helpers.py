"""Shared by tests/train/test_optimizers_*.py: the tiny model, TrainingArguments and one training step."""

from __future__ import annotations

from dataclasses import replace

import torch

from tunesmith.config.schema import FinetuningArgs


def tiny(path):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


def arguments(tmp_path, **kwargs):
    from transformers import TrainingArguments

    base = {"output_dir": str(tmp_path / "out"), "learning_rate": 1e-3, "weight_decay": 0.0, "report_to": "none",
            "optim": "adamw_torch"}
    return TrainingArguments(**{**base, **kwargs})


def finetuning(**kwargs) -> FinetuningArgs:
    return replace(FinetuningArgs(), **kwargs)


def backward(model, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.config.vocab_size, (2, 16), generator=generator)
    model(input_ids=ids, labels=ids).loss.backward()


def snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def changed(model, before: dict[str, torch.Tensor]) -> set[str]:
    return {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
