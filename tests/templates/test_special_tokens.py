"""fix_special_tokens: LLaMA-Factory's Template.fix_special_tokens (replace_eos, EOS and pad fallbacks, stop words as
special tokens), and proof that it leaves the encodings of the tiny models' own templates as they are."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.data.encode import encode_supervised
from tunesmith.templates.builtin import TEMPLATES, get_template
from tunesmith.templates.resolve import resolve_template
from tunesmith.templates.special_tokens import fix_special_tokens
from tunesmith.types import Conversation, Message

CONVS = [Conversation((Message("user", "hi"), Message("assistant", "hello there"), Message("user", "1+1=?"),
                       Message("assistant", "2")), system="Be brief."),
         Conversation((Message("user", "name?"), Message("assistant", "Tuney")))]


def load(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)  # a fresh tokenizer: fix_special_tokens changes it in place


@pytest.mark.parametrize("name", ["qwen3_nothink", "qwen", "qwen3", "chatml", "qwen2_vl"])
def test_qwen_templates_keep_the_tiny_qwen_encodings(qwen2_model, name):
    """The tiny Qwen tokenizer's EOS already is <|im_end|>: the EOS stays, and the encodings (the goldens of
    tests/data and tests/e2e) are unchanged."""
    tok = load(qwen2_model)
    before = encode_supervised(CONVS, tok, get_template(name), cutoff_len=256)[0]
    changes = fix_special_tokens(get_template(name), tok)
    assert changes == ([] if name != "chatml" else ["stop word '<|im_start|>': marked special"])
    assert (tok.eos_token, tok.pad_token, len(tok)) == ("<|im_end|>", "<|endoftext|>", 512)
    assert encode_supervised(CONVS, tok, get_template(name), cutoff_len=256)[0] == before


def test_llama3_keeps_the_tiny_llama3_encodings(llama3_model):
    tok = load(llama3_model)
    before = encode_supervised(CONVS, tok, get_template("llama3"), cutoff_len=256)[0]
    assert fix_special_tokens(get_template("llama3"), tok) == ["stop word '<|eom_id|>': marked special"]
    assert (tok.eos_token, len(tok)) == ("<|eot_id|>", 512)
    assert "<|eom_id|>" in tok.all_special_tokens
    assert encode_supervised(CONVS, tok, get_template("llama3"), cutoff_len=256)[0] == before


def test_replace_eos_makes_the_first_stop_word_the_eos(qwen2_model):
    """A base Qwen tokenizer ends documents with <|endoftext|>; the chat template's end of turn replaces it."""
    tok = load(qwen2_model)
    tok.eos_token = "<|endoftext|>"
    assert fix_special_tokens(get_template("qwen"), tok) == [
        "eos_token: '<|im_end|>' (template `qwen`'s end of turn; was '<|endoftext|>')"]
    assert tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>") and len(tok) == 512
    assert fix_special_tokens(get_template("qwen"), tok) == []  # a second call changes nothing


def test_missing_tokens_are_added(qwen2_model):
    tok = load(qwen2_model)
    assert fix_special_tokens(get_template("llama3"), tok) == [
        "eos_token: '<|eot_id|>' (template `llama3`'s end of turn; was '<|im_end|>'; a new token)",
        "stop word '<|eom_id|>': added as a new special token"]
    assert len(tok) == 514 and tok.eos_token == "<|eot_id|>"
    assert tok.encode("a<|eom_id|>", add_special_tokens=False)[-1] == tok.convert_tokens_to_ids("<|eom_id|>") == 513


def test_efficient_eos_templates_keep_the_eos_and_add_their_stop_words(qwen2_model):
    tok = load(qwen2_model)
    assert get_template("glm4").efficient_eos and not get_template("glm4").replace_eos
    assert fix_special_tokens(get_template("glm4"), tok) == [
        "stop word '<|user|>': added as a new special token",
        "stop word '<|observation|>': added as a new special token"]
    assert tok.eos_token == "<|im_end|>" and len(tok) == 514


def test_replace_eos_needs_a_stop_word(qwen2_model):
    broken = replace(get_template("qwen"), name="custom", stop_words=())
    with pytest.raises(ConfigError, match="template `custom` replaces the EOS token with its first stop word, but "
                                          "has no stop words"):
        fix_special_tokens(broken, load(qwen2_model))
    assert all(t.stop_words for t in TEMPLATES.values() if t.replace_eos)


def test_eos_and_pad_fallbacks(qwen2_model):
    tok = load(qwen2_model)
    tok.eos_token, tok.pad_token = None, None
    assert tok.eos_token_id is None and tok.pad_token_id is None
    assert fix_special_tokens(get_template("empty"), tok) == [
        "eos_token: '<|endoftext|>' (the tokenizer had none; none before)",
        "pad_token: '<|endoftext|>' (the EOS token; the tokenizer had none)"]
    assert tok.eos_token_id == tok.pad_token_id == tok.convert_tokens_to_ids("<|endoftext|>")


def test_the_tokenizers_own_chat_template_changes_nothing(qwen2_model):
    tok = load(qwen2_model)
    jinja = resolve_template(None, tok)
    assert jinja.stop_words == ("<|im_end|>",)
    assert fix_special_tokens(jinja, tok) == [] and len(tok) == 512
