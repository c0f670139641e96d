"""LoRA+ (`loraplus_lr_ratio`): LoRA's B matrices learn at ratio x learning_rate, A matrices at learning_rate,
B matrices of LoRA embeddings at `loraplus_lr_embedding`."""

from __future__ import annotations

from tunesmith.train.optimizers import build_optimizer

from .optimizer_helpers import arguments, finetuning, tiny


def lora(model, targets):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets))


def test_loraplus_groups_and_learning_rates(qwen2_model, tmp_path):
    model = lora(tiny(qwen2_model), ["q_proj", "v_proj", "embed_tokens"])
    optimizer = build_optimizer(model, arguments(tmp_path, learning_rate=2e-4, weight_decay=0.01),
                                finetuning(finetuning_type="lora", loraplus_lr_ratio=16.0, loraplus_lr_embedding=1e-5))
    names = {id(p): n for n, p in model.named_parameters()}
    by_lr: dict[float, set[str]] = {}
    for group in optimizer.param_groups:
        by_lr.setdefault(group["lr"], set()).update(names[id(p)] for p in group["params"])
    assert set(by_lr) == {2e-4, 2e-4 * 16, 1e-5}
    assert by_lr[2e-4 * 16] and all("lora_B" in n for n in by_lr[2e-4 * 16])
    assert by_lr[2e-4] and all("lora_A" in n or "lora_embedding_A" in n for n in by_lr[2e-4])
    assert by_lr[1e-5] and all("lora_embedding_B" in n for n in by_lr[1e-5])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set().union(*by_lr.values()) == trainable
    assert all(g["weight_decay"] == 0.01 for g in optimizer.param_groups)
