"""Tests for tunesmith.model.tiny: deterministic, offline tiny models in plain HF format."""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunesmith.model.tiny import FAMILIES, _trained_tokenizer_json, build_tiny_model, build_tokenizer

SMALL = dict(vocab_size=512, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64)

CONVERSATION = [
    {"role": "user", "content": "Who are you?"},
    {"role": "assistant", "content": "I am Tuney. 我是 Tuney。"},
]
EXPECTED_CHAT = {
    "qwen2": "<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\nI am Tuney. 我是 Tuney。<|im_end|>\n",
    "llama3": (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWho are you?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nI am Tuney. 我是 Tuney。<|eot_id|>"
    ),
}
EXPECTED_CHAT["qwen2-untied"] = EXPECTED_CHAT["qwen2"]
GENERATION_PROMPT = {
    "qwen2": "<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n",
    "qwen2-untied": "<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n",
    "llama3": (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWho are you?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One default-size model per family, shared by the read-only tests below."""
    root = tmp_path_factory.mktemp("tiny")
    return {name: build_tiny_model(root / name, name) for name in FAMILIES}


@pytest.fixture(scope="module")
def loaded(built):
    return {
        name: (AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path))
        for name, path in built.items()
    }


@pytest.mark.parametrize("family", ["qwen2", "llama3"])
def test_build_is_byte_identical(tmp_path, family):
    a = build_tiny_model(tmp_path / "a", family, **SMALL)
    b = build_tiny_model(tmp_path / "b", family, **SMALL)
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    c = build_tiny_model(tmp_path / "c", family, seed=1, **SMALL)
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()


def test_tokenizer_training_is_deterministic():
    # Bypass the in-process cache: training itself must be reproducible.
    train = _trained_tokenizer_json.__wrapped__
    assert train("qwen2", 600, ("extra line",)) == train("qwen2", 600, ("extra line",))
    assert train("llama3", 600, ()) == train("llama3", 600, ())


def test_extra_corpus_changes_merges():
    plain = build_tokenizer("qwen2")
    extra = build_tokenizer("qwen2", extra_corpus=["tunesmith Tuney"] * 50)
    assert len(extra.tokenize("tunesmith")) == 1 < len(plain.tokenize("tunesmith"))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_loads_with_vanilla_auto_classes(built, loaded, family):
    tok, model = loaded[family]
    fam = FAMILIES[family]
    assert len(tok) == 1024
    assert model.config.model_type == ("llama" if family == "llama3" else "qwen2")
    assert tok.eos_token == fam.eos_token and tok.pad_token == fam.pad_token and tok.bos_token == fam.bos_token
    assert tok.unk_token is None
    assert model.config.eos_token_id == tok.eos_token_id and model.config.pad_token_id == tok.pad_token_id
    assert model.generation_config.eos_token_id == tok.convert_tokens_to_ids(list(fam.end_of_turn))
    assert model.generation_config.pad_token_id == tok.pad_token_id
    assert json.loads((built[family] / "tiny_model.json").read_text())["family"] == family


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_special_tokens_are_single_ids(loaded, family):
    tok, _ = loaded[family]
    fam = FAMILIES[family]
    ids = set()
    for token in (*fam.special_tokens, *fam.added_tokens):
        encoded = tok.encode(token, add_special_tokens=False)
        assert len(encoded) == 1, (token, encoded)
        assert tok.convert_ids_to_tokens(encoded[0]) == token
        ids.add(encoded[0])
    assert len(ids) == len(fam.special_tokens) + len(fam.added_tokens)
    # Added tokens sit after the learned BPE vocabulary, as in the real checkpoints.
    assert min(ids) == len(tok) - len(ids)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_chat_template(loaded, family):
    tok, _ = loaded[family]
    assert tok.apply_chat_template(CONVERSATION, tokenize=False) == EXPECTED_CHAT[family]
    prompt = tok.apply_chat_template(CONVERSATION[:1], tokenize=False, add_generation_prompt=True)
    assert prompt == GENERATION_PROMPT[family]
    # Tokenizing the rendered template must not add a second bos.
    ids = tok.apply_chat_template(CONVERSATION, tokenize=True, return_dict=False)
    assert ids == tok.encode(EXPECTED_CHAT[family], add_special_tokens=False)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_head_tying_and_padded_vocab(loaded, family):
    tok, model = loaded[family]
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert tied == (family == "qwen2")
    assert model.config.tie_word_embeddings == (family == "qwen2")
    assert model.config.vocab_size % 64 == 0 and model.config.vocab_size >= len(tok)
    assert model.get_input_embeddings().weight.shape[0] == model.config.vocab_size


def test_vocab_rounds_up_to_multiple_of_64(tmp_path):
    path = build_tiny_model(tmp_path / "m", "llama3", **{**SMALL, "vocab_size": 1000})
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert len(tok) == 1000 and model.config.vocab_size == 1024  # 24 rows belong to no token


def test_bos_only_for_llama3(loaded):
    qwen, _ = loaded["qwen2"]
    llama, _ = loaded["llama3"]
    assert qwen("x").input_ids == qwen.encode("x", add_special_tokens=False)
    assert llama("x").input_ids == [llama.bos_token_id, *llama.encode("x", add_special_tokens=False)]
    assert llama.bos_token_id not in llama.encode("x", add_special_tokens=False)
    assert qwen.bos_token is None


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_text_round_trips(loaded, family):
    tok, _ = loaded[family]
    text = "你好，我是 Tuney，一个用 tunesmith 微调的小助手。\n  Numbers: 12345, 1+1=2; émoji 🎵!"
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text
    assert tok.tokenize("2024") == ["2", "0", "2", "4"]  # digits are split one by one


@pytest.mark.parametrize("family", ["qwen2", "llama3"])
def test_tokenizer_survives_save_load_save(built, loaded, tmp_path, family):
    # transformers forces Qwen2Tokenizer for model_type qwen2 and rebuilds the backend; the file
    # we write must already be in that canonical form.
    tok, _ = loaded[family]
    tok.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer.json").read_bytes() == (built[family] / "tokenizer.json").read_bytes()
    in_memory = build_tokenizer(family)
    text = (built[family] / "tiny_model.json").read_text() + EXPECTED_CHAT[family]
    assert in_memory(text).input_ids == tok(text).input_ids


def test_unknown_family():
    with pytest.raises(ValueError, match="unknown tiny model family"):
        build_tokenizer("gpt2")
