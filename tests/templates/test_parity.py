"""Where a test tokenizer carries its family's Jinja chat_template (the tiny ChatML and Llama 3 models), every named
template of that markup gives the same token ids, labels and generation prompts as apply_chat_template."""

from __future__ import annotations

import pytest

from tunesmith.data.encode import encode_supervised
from tunesmith.templates.builtin import get_template
from tunesmith.templates.resolve import resolve_template
from tunesmith.types import Conversation, Message

SINGLE = (Message("user", "What is 1+1?"), Message("assistant", "1+1=2"))
MULTI = (Message("user", "hi"), Message("assistant", "hello there"), Message("user", "1+1=?"),
         Message("assistant", "2"))
CONVS = [Conversation(SINGLE), Conversation(MULTI), Conversation(SINGLE, system="Be brief."),
         Conversation(MULTI, system="Be brief.")]
# Plain ChatML without a default system (a BOS prefix renders nothing: the tiny Qwen2 tokenizer has no BOS).
CHATML = ("chatml", "yi", "smollm", "llava_next_yi", "llava_next_video_yi", "cpm4", "falcon_h1", "intern_s1",
          "qwen3_nothink", "qwen3_vl_nothink", "qwen3_5_nothink", "qwen3_omni_nothink", "moss_vl")
LLAMA3 = ("llama3", "mllama", "llava_next_llama3")


@pytest.fixture(scope="module")
def tokenizers(qwen2_model, llama3_model):
    from transformers import AutoTokenizer

    return {"chatml": AutoTokenizer.from_pretrained(qwen2_model), "llama3": AutoTokenizer.from_pretrained(llama3_model)}


def as_messages(conv: Conversation) -> list[dict]:
    head = [{"role": "system", "content": conv.system}] if conv.system else []
    return head + [{"role": m.role, "content": m.content} for m in conv.messages]


@pytest.mark.parametrize(("family", "name"), [("chatml", n) for n in CHATML] + [("llama3", n) for n in LLAMA3])
def test_named_template_encodes_like_the_tokenizer(tokenizers, family, name):
    tok = tokenizers[family]
    template = get_template(name)
    if tok.bos_token or "{{bos_token}}" not in template.prefix:  # check_fits wants the BOS a template writes
        template.check_fits(tok)
    ours, _ = encode_supervised(CONVS, tok, template, cutoff_len=1024)
    theirs, _ = encode_supervised(CONVS, tok, resolve_template(None, tok), cutoff_len=1024)
    assert [(e.input_ids, e.labels) for e in ours] == [(e.input_ids, e.labels) for e in theirs]
    for conv in CONVS:
        history = Conversation(conv.messages[:-1], conv.system)
        expected = tok.apply_chat_template(as_messages(history), tokenize=False, add_generation_prompt=True)
        assert template.generation_prompt(history, tok.bos_token or "", tok.eos_token) == expected
