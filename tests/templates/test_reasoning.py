"""Reasoning templates (qwen3, deepseekr1) follow LLaMA-Factory's ReasoningTemplate, and their Jinja export
renders the same training text and generation prompts for every thinking setting."""

from __future__ import annotations

import pytest

from tunesmith.templates.builtin import TEMPLATES, get_template
from tunesmith.templates.jinja import to_jinja
from tunesmith.types import Conversation, Message

EMPTY = "<think>\n\n</think>\n\n"
THOUGHT = "<think>\nadd them\n</think>\n\n"
CONV = Conversation((Message("user", "1+1?"), Message("assistant", THOUGHT + "2"), Message("user", "2+2?"),
                     Message("assistant", "4")), system="Be brief.")


def test_thinking_enabled_trains_thoughts_and_empty_thoughts():
    pairs = get_template("qwen3").turns(CONV)
    assert [r for _, r in pairs] == [THOUGHT + "2<|im_end|>", EMPTY + "4<|im_end|>"]


def test_thinking_disabled_drops_thoughts_and_puts_empty_ones_in_the_prompt():
    template = get_template("qwen3").configure(enable_thinking=False)
    pairs = template.turns(CONV)
    assert [r for _, r in pairs] == ["2<|im_end|>", "4<|im_end|>"]
    assert all(p.endswith("assistant\n" + EMPTY) for p, _ in pairs)
    assert get_template("qwen3").turns(CONV, enable_thinking=False) == pairs  # per-call override


def test_mask_history_drops_history_thoughts():
    pairs = get_template("qwen3").turns(CONV, mask_history=True)
    assert [r for _, r in pairs] == ["2<|im_end|>", EMPTY + "4<|im_end|>"]
    kept = get_template("qwen3").configure(preserve_thinking=True).turns(CONV, mask_history=True)
    assert [r for _, r in kept] == [THOUGHT + "2<|im_end|>", EMPTY + "4<|im_end|>"]


def test_generation_prompt_hides_history_thoughts():
    history = Conversation(CONV.messages[:3], CONV.system)
    assert "add them" not in get_template("qwen3").generation_prompt(history)
    assert get_template("qwen3").generation_prompt(history, enable_thinking=False).endswith("assistant\n" + EMPTY)
    assert "add them" in get_template("qwen3").configure(preserve_thinking=True).generation_prompt(history)


def test_remove_thought_matches_llamafactory_regex():
    t = get_template("qwen3")
    assert t.remove_thought("\n" + THOUGHT + "a" + THOUGHT + "b") == "ab"
    assert t.remove_thought("<think>\nx</think>y") == "<think>\nx</think>y"  # not the exact thought words


@pytest.fixture(scope="module")
def tok(qwen2_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(qwen2_model)


def as_messages(conv: Conversation) -> list[dict]:
    head = [{"role": "system", "content": conv.system}] if conv.system else []
    return head + [{"role": m.role, "content": m.content} for m in conv.messages]


VARIANTS = [dict(enable_thinking=e, preserve_thinking=p) for e in (True, False, None) for p in (False, True)]
CONVS = [CONV, Conversation(CONV.messages[:2]),
         Conversation((Message("user", "q"), Message("assistant", "\n" + THOUGHT + "a" + THOUGHT + "b"),
                       Message("user", "r"), Message("assistant", "<think>\nunfinished")))]


@pytest.mark.parametrize("name", [n for n, t in sorted(TEMPLATES.items()) if t.reasoning])
@pytest.mark.parametrize("variant", VARIANTS,
                         ids=lambda v: f"think={v['enable_thinking']}-keep={v['preserve_thinking']}")
def test_jinja_export_of_reasoning_templates(name, variant, tok):
    template = get_template(name).configure(**variant)
    jinja = to_jinja(template)
    bos, eos = "<s>", "</s>"
    for conv in CONVS:
        expected = "".join(p + r for p, r in template.turns(conv, bos, eos))
        kw = dict(chat_template=jinja, tokenize=False, bos_token=bos, eos_token=eos)
        assert tok.apply_chat_template(as_messages(conv), **kw) == expected
        history = Conversation(conv.messages[:-1], conv.system)
        assert (tok.apply_chat_template(as_messages(history), add_generation_prompt=True, **kw)
                == template.generation_prompt(history, bos, eos))


def test_configure_checks_tool_format_and_keeps_other_options():
    from tunesmith.config.errors import ConfigError

    assert get_template("qwen3").configure(tool_format=None, enable_thinking=None).enable_thinking is None
    assert get_template("chatml").configure(tool_format="qwen").tool_format == "qwen"
    with pytest.raises(ConfigError, match="unknown tool_format `glm9`"):
        get_template("qwen3").configure(tool_format="glm9")
