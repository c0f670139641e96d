"""Each named template, exported as Jinja, renders through apply_chat_template exactly what training encodes."""

from __future__ import annotations

import pytest

from tunesmith.templates.builtin import TEMPLATES
from tunesmith.templates.jinja import to_jinja
from tunesmith.types import Conversation, Message

CONVERSATIONS = [
    Conversation((Message("user", "1+1=?"), Message("assistant", "2"))),
    Conversation((Message("user", "hi"), Message("assistant", "hello"), Message("user", "name?"),
                  Message("assistant", "Tuney")), system="Be brief."),
]


@pytest.fixture(scope="module")
def tok(llama3_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(llama3_model)  # has bos and eos tokens


def as_messages(conv: Conversation) -> list[dict]:
    head = [{"role": "system", "content": conv.system}] if conv.system else []
    return head + [{"role": m.role, "content": m.content} for m in conv.messages]


@pytest.mark.parametrize("name", sorted(TEMPLATES))
@pytest.mark.parametrize("conv", CONVERSATIONS, ids=["single", "multi-system"])
def test_jinja_renders_the_training_text(name, conv, tok):
    template = TEMPLATES[name]
    jinja = to_jinja(template)
    bos, eos = tok.bos_token, tok.eos_token
    expected = "".join(p + r for p, r in template.turns(conv, bos, eos))
    rendered = tok.apply_chat_template(as_messages(conv), chat_template=jinja, tokenize=False)
    assert rendered == expected
    prompt_only = Conversation(conv.messages[:-1], conv.system)
    generation = tok.apply_chat_template(as_messages(prompt_only), chat_template=jinja, tokenize=False,
                                         add_generation_prompt=True)
    assert generation == template.generation_prompt(prompt_only, bos, eos)
