"""One test per entry of model/compat.py: each fails loudly when a library upgrade changes the internal it
relies on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from tunesmith.model import compat

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lm(qwen2_model):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(qwen2_model, attn_implementation="sdpa").eval()


def lora_of(model, **extra):
    import copy

    from peft import LoraConfig, get_peft_model

    return get_peft_model(copy.deepcopy(model), LoraConfig(r=2, target_modules=["q_proj", "v_proj"],
                                                           init_lora_weights=False, **extra))


def test_checked_versions_are_the_pinned_ones():
    pins = dict(re.findall(r'"(torch|transformers|peft|accelerate)==([\d.]+)"',
                           (REPO / "pyproject.toml").read_text(encoding="utf-8")))
    assert pins == compat.CHECKED, "a pin moved: re-run tests/model/test_compat.py and update CHECKED"
    assert compat.drift() == {}


def test_unwrap_parallel_and_peft_base(lm):
    peft_model = lora_of(lm)
    compiled = torch.compile(peft_model)  # a wrapper module; nothing is compiled until it runs
    assert compat.unwrap_parallel(compiled) is peft_model
    assert compat.is_peft_model(compiled) and not compat.is_peft_model(lm)
    assert compat.peft_base(compiled) is peft_model.get_base_model()
    assert compat.peft_base(lm) is lm


def test_adapters_disabled_gives_the_base_model(lm):
    peft_model = lora_of(lm)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        base = lm(ids).logits
        tuned = peft_model(ids).logits
        with compat.adapters_disabled(peft_model):
            off = peft_model(ids).logits
    assert not torch.allclose(tuned, base) and torch.equal(off, base)


def test_active_adapter_switches_and_restores_the_trainable_set(lm):
    from peft import LoraConfig

    peft_model = lora_of(lm)
    peft_model.add_adapter("other", LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    before = {n: p.requires_grad for n, p in peft_model.named_parameters()}
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad(), compat.active_adapter(peft_model, "other") as model:
        assert model.active_adapter == "other"
        other = model(ids).logits
    assert peft_model.active_adapter == "default"
    assert {n: p.requires_grad for n, p in peft_model.named_parameters()} == before
    with torch.no_grad():
        assert not torch.allclose(peft_model(ids).logits, other)


def test_saved_copies_of_a_modules_to_save_head(lm):
    peft_model = lora_of(lm, modules_to_save=["lm_head"])
    head = peft_model.get_output_embeddings()
    copies = compat.saved_copies(head)
    assert len(copies) == 2 and all(type(m) is torch.nn.Linear for m in copies)
    assert compat.saved_copies(lm.get_output_embeddings()) == [lm.get_output_embeddings()]


def test_attention_implementation_and_logits_to_keep(lm):
    assert compat.attention_implementation(lm) == "sdpa"
    assert compat.attention_implementation(lora_of(lm)) == "sdpa"
    assert compat.accepts_logits_to_keep(lora_of(lm))
    with torch.no_grad():
        assert lm(torch.tensor([[1, 2, 3]]), logits_to_keep=1).logits.shape[1] == 1


def test_sdpa_attention_is_transformers_own():
    module = torch.nn.Module()
    module.is_causal = True
    q, k, v = (torch.randn(1, 2, 5, 8) for _ in range(3))
    out, _ = compat.sdpa_attention(module, q, k, v, None, dropout=0.0, scaling=None)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)
    torch.testing.assert_close(out, expected)


def test_head_input_capture_sees_the_final_hidden_states(lm):
    capture = compat.HeadInputCapture([lm.get_output_embeddings()])
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    try:
        with torch.no_grad():
            full = lm(ids, output_hidden_states=True)
            with capture.capture():
                empty = lm(ids)
        hidden, used = capture.take()
    finally:
        capture.remove()
    assert empty.logits.shape[1] == 0 and used is lm.get_output_embeddings()
    torch.testing.assert_close(hidden, full.hidden_states[-1])
    torch.testing.assert_close(used(hidden), full.logits)


def test_trainer_hooks_reach_trainers_private_methods(lm, tmp_path):
    from torch.utils.data import SequentialSampler
    from transformers import Trainer, TrainingArguments

    calls = []

    class Hooked(compat.TrainerHooks, Trainer):
        def train_sampler(self, dataset):
            calls.append("sampler")
            return SequentialSampler(dataset)

        def save_weights(self, output_dir):
            calls.append("save")
            return True

    data = [{"input_ids": [1, 2, 3], "labels": [1, 2, 3]}] * 4
    args = TrainingArguments(str(tmp_path), report_to="none", per_device_train_batch_size=2, use_cpu=True)
    trainer = Hooked(model=lm, args=args, train_dataset=data)
    assert isinstance(trainer.get_train_dataloader().sampler, SequentialSampler)
    trainer.save_model(str(tmp_path / "out"))
    assert calls == ["sampler", "save"] and not (tmp_path / "out" / "model.safetensors").exists()
    batch = trainer.prepare_inputs({"input_ids": torch.tensor([[1, 2]])})
    assert batch["input_ids"].device == trainer.args.device
    assert trainer.token_average_scale(None) == 1 and trainer.token_average_scale(torch.tensor(7)) == 1


def test_rank_aware_batch_sampler_becomes_the_batch_sampler(lm, tmp_path):
    from transformers import Trainer, TrainingArguments

    class Batches(compat.rank_aware_batch_sampler_base()):
        def __init__(self):  # the base's constructor is not needed: only its type matters to Trainer
            pass

        def __iter__(self):
            return iter([[0, 1], [2]])

        def __len__(self):
            return 2

    class Hooked(compat.TrainerHooks, Trainer):
        def train_sampler(self, dataset):
            return Batches()

    data = [{"input_ids": [1, 2, 3], "labels": [1, 2, 3]}] * 3
    args = TrainingArguments(str(tmp_path), report_to="none", per_device_train_batch_size=2, use_cpu=True)
    loader = Hooked(model=lm, args=args, train_dataset=data).get_train_dataloader()
    assert [len(batch["input_ids"]) for batch in loader] == [2, 1]


def test_decay_parameter_names_follow_trainers_rule(lm, tmp_path):
    from transformers import Trainer, TrainingArguments

    names = compat.decay_parameter_names(lm)
    trainer = Trainer(model=lm, args=TrainingArguments(str(tmp_path), report_to="none", use_cpu=True))
    assert sorted(names) == sorted(trainer.get_decay_parameter_names(lm))
    assert not any("norm" in n or n.endswith("bias") for n in names) and "lm_head.weight" in names


def test_compile_errors_are_recognised():
    from torch._dynamo.exc import BackendCompilerFailed

    assert compat.is_compile_error(BackendCompilerFailed(lambda *a: None, RuntimeError("x"), None))
    assert not compat.is_compile_error(RuntimeError("out of memory"))


def test_load_checkpoint_weights_restores_a_checkpoint(lm, tmp_path):
    import copy

    from transformers import Trainer, TrainingArguments

    class Hooked(compat.TrainerHooks, Trainer):
        pass

    model = copy.deepcopy(lm)
    args = TrainingArguments(str(tmp_path), report_to="none", use_cpu=True)
    trainer = Hooked(model=model, args=args)
    folder = tmp_path / "checkpoint-3"
    trainer.save_model(str(folder))
    trainer.state.global_step = 3
    trainer.state.save_to_json(str(folder / "trainer_state.json"))
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    trainer.state.global_step = 0
    trainer.load_checkpoint_weights(str(folder))
    assert trainer.state.global_step == 3
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
