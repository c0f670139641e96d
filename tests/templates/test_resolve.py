"""`template` unset -> the tokenizer's own chat_template, with the same ids and masks as the named template."""

from __future__ import annotations

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.data.encode import encode_supervised
from tunesmith.templates.builtin import get_template
from tunesmith.templates.jinja import to_jinja
from tunesmith.templates.resolve import JinjaTemplate, resolve_template
from tunesmith.types import Conversation, Message

SINGLE = (Message("user", "What is 1+1?"), Message("assistant", "1+1=2"))
MULTI = (Message("user", "hi"), Message("assistant", "hello there"), Message("user", "1+1=?"),
         Message("assistant", "2\n"))  # a reply ending in whitespace keeps it trained
CONVS = [Conversation(SINGLE), Conversation(MULTI), Conversation(SINGLE, system="Be brief."),
         Conversation(MULTI, system="Be brief.")]
FAMILIES = [("qwen2_model", "qwen3_nothink", "<|im_end|>"), ("llama3_model", "llama3", "<|eot_id|>")]


def load(request, fixture):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(request.getfixturevalue(fixture))


def as_messages(conv: Conversation) -> list[dict]:
    head = [{"role": "system", "content": conv.system}] if conv.system else []
    return head + [{"role": m.role, "content": m.content} for m in conv.messages]


@pytest.mark.parametrize(("fixture", "name", "end"), FAMILIES)
def test_tokenizer_template_encodes_like_the_named_template(request, fixture, name, end):
    tok = load(request, fixture)
    jinja = resolve_template(None, tok)
    assert isinstance(jinja, JinjaTemplate) and jinja.stop_words == (end,)
    ours, _ = encode_supervised(CONVS, tok, jinja, cutoff_len=1024)
    named, _ = encode_supervised(CONVS, tok, get_template(name), cutoff_len=1024)
    assert len(ours) == len(named) == len(CONVS)
    for a, b in zip(ours, named):
        assert a.input_ids == b.input_ids
        assert a.labels == b.labels
    assert [r for _, r in jinja.turns(CONVS[1])] == ["hello there" + end, "2\n" + end]


@pytest.mark.parametrize(("fixture", "name", "end"), FAMILIES)
def test_generation_prompt_matches_the_tokenizer(request, fixture, name, end):
    tok = load(request, fixture)
    for conv in CONVS:
        prompt_only = Conversation(conv.messages[:-1], conv.system)
        expected = tok.apply_chat_template(as_messages(prompt_only), tokenize=False, add_generation_prompt=True)
        assert get_template(name).generation_prompt(prompt_only, tok.bos_token or "", tok.eos_token) == expected
        assert resolve_template(None, tok).generation_prompt(prompt_only) == expected


def test_chatml_newline_after_end_of_turn_is_prompt(qwen2_model):
    from transformers import AutoTokenizer

    pairs = resolve_template(None, AutoTokenizer.from_pretrained(qwen2_model)).turns(CONVS[1])
    assert pairs[0] == ("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", "hello there<|im_end|>")
    assert pairs[1][0].startswith("\n<|im_start|>user\n")


def test_named_template_wins_and_unknown_names_fail(qwen2_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(qwen2_model)
    assert resolve_template("llama3", tok) is get_template("llama3")
    with pytest.raises(ConfigError, match="unknown template `qwen4`"):
        resolve_template("qwen4", tok)


def test_no_chat_template_is_a_config_error(qwen2_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(qwen2_model)
    tok.chat_template = None
    with pytest.raises(ConfigError, match=r"no chat_template.*set\s+`template`.*known: .*qwen3_nothink"):
        resolve_template(None, tok)


def test_prefix_unstable_template_is_refused(qwen2_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(qwen2_model)
    tok.chat_template = ("{% for m in messages %}{% if loop.last %}LAST:{% endif %}{{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}A:{% endif %}")
    with pytest.raises(ConfigError, match="not prefix-stable"):
        resolve_template(None, tok)


def test_to_jinja_returns_the_tokenizer_source(qwen2_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(qwen2_model)
    assert to_jinja(resolve_template(None, tok)) == tok.chat_template


@pytest.mark.parametrize(("template", "tokens"), [("llama3", "<|end_header_id|>"), ("gemma", "<end_of_turn>"),
                                                  ("deepseek3", "<｜Assistant｜>"), ("phi4", "<|im_sep|>")])
def test_check_fits_names_template_and_missing_token(qwen2_model, template, tokens):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(qwen2_model)
    with pytest.raises(ConfigError) as err:
        get_template(template).check_fits(tok)
    assert f"template `{template}`" in str(err.value) and repr(tokens) in str(err.value)


def test_check_fits_accepts_the_right_family(qwen2_model, llama3_model):
    from transformers import AutoTokenizer

    qwen, llama = AutoTokenizer.from_pretrained(qwen2_model), AutoTokenizer.from_pretrained(llama3_model)
    for name in ("qwen", "qwen3", "qwen3_nothink", "chatml", "yi"):
        get_template(name).check_fits(qwen)
    get_template("llama3").check_fits(llama)
    with pytest.raises(ConfigError, match="needs a BOS token"):
        get_template("deepseek").check_fits(qwen)  # qwen2 has no BOS token
