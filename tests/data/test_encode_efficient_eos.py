"""efficient_eos templates (GLM, gpt_oss, gemma2, ...): exact ids and labels, checked by hand against
LLaMA-Factory's supervised, pairwise and feedback processors.

The tokenizer is a word-level one whose ids can be read off the table below, so every expected list is written
out token by token. glm4 renders ``[gMASK]<sop><|user|>\\n{q}<|assistant|>\\n{a}<|user|>...`` with no end-of-turn
token: the label of the token after a reply (the next ``<|user|>``) is EOS, and a trained EOS ends the example.
"""

from __future__ import annotations

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.data.encode import encode_supervised
from tunesmith.data.encode_preference import encode_feedback, encode_pairwise, encode_prompts
from tunesmith.templates.builtin import get_template
from tunesmith.types import Conversation, Message

SPECIAL = ["<unk>", "<eos>", "[gMASK]", "<sop>", "<|user|>", "<|assistant|>", "<|system|>", "<|observation|>"]
WORDS = ["\n", " ", "hi", "hello", "x", "y", "sys", "a", "b", "c", "d", "e"]
VOCAB = {w: i for i, w in enumerate(SPECIAL + WORDS)}
UNK, EOS, GMASK, SOP, USER, ASSISTANT, SYSTEM, OBSERVATION = range(8)
NL, SP, HI, HELLO, X, Y, SYS, A, B, C, D, E = range(8, 20)
I = -100  # IGNORE_INDEX

GLM4 = get_template("glm4")
TWO_TURNS = Conversation((Message("user", "hi"), Message("assistant", "hello"), Message("user", "x"),
                          Message("assistant", "y")))


@pytest.fixture(scope="module")
def tok():
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel(VOCAB, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"\n| "), behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", eos_token="<eos>")
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL[2:]})
    return tokenizer


def test_the_word_level_tokenizer(tok):
    assert tok.eos_token_id == EOS
    assert tok.encode("[gMASK]<sop><|user|>\nhi<|assistant|>\nhello a b", add_special_tokens=False) == [
        GMASK, SOP, USER, NL, HI, ASSISTANT, NL, HELLO, SP, A, SP, B]


def test_single_turn_ends_with_a_trained_eos(tok):
    conv = Conversation((Message("user", "hi"), Message("assistant", "hello")))
    (ex,), stats = encode_supervised([conv], tok, GLM4, cutoff_len=64)
    assert ex.input_ids == [GMASK, SOP, USER, NL, HI, ASSISTANT, NL, HELLO, EOS]
    assert ex.labels == [I, I, I, I, I, I, NL, HELLO, EOS]
    assert (stats.tokens, stats.trained_tokens) == (9, 3)


def test_the_token_after_each_reply_is_labelled_eos(tok):
    (ex,), stats = encode_supervised([TWO_TURNS], tok, GLM4, cutoff_len=64)
    assert ex.input_ids == [GMASK, SOP, USER, NL, HI, ASSISTANT, NL, HELLO,
                            USER, NL, X, ASSISTANT, NL, Y, EOS]
    assert ex.labels == [I, I, I, I, I, I, NL, HELLO,
                         EOS, I, I, I, NL, Y, EOS]  # <|user|> after "hello" is labelled EOS
    assert stats.trained_tokens == 6


def test_system_prefix_and_three_turns(tok):
    conv = Conversation(TWO_TURNS.messages + (Message("user", "a"), Message("assistant", "b")), system="sys")
    (ex,), _ = encode_supervised([conv], tok, GLM4, cutoff_len=64)
    assert ex.input_ids == [GMASK, SOP, SYSTEM, NL, SYS, USER, NL, HI, ASSISTANT, NL, HELLO,
                            USER, NL, X, ASSISTANT, NL, Y,
                            USER, NL, A, ASSISTANT, NL, B, EOS]
    assert ex.labels == [I, I, I, I, I, I, I, I, I, NL, HELLO,
                         EOS, I, I, I, NL, Y,
                         EOS, I, I, I, NL, B, EOS]


def test_a_function_call_is_a_reply_too(tok):
    """The observation after a function message starts with the label EOS, as after any trained reply."""
    conv = Conversation((Message("user", "hi"), Message("function", '{"name": "x", "arguments": {}}'),
                         Message("observation", "y"), Message("assistant", "hello")))
    (ex,), _ = encode_supervised([conv], tok, GLM4, cutoff_len=64)
    after_call = ex.input_ids.index(OBSERVATION)
    assert ex.labels[after_call] == EOS and ex.input_ids[after_call:] == [OBSERVATION, NL, Y, ASSISTANT, NL, HELLO,
                                                                          EOS]
    assert ex.labels[after_call + 1:] == [I, I, I, NL, HELLO, EOS]
    assert ex.labels[:6] == [I] * 6 and ex.labels[6:after_call] == ex.input_ids[6:after_call]


def test_truncation_reserves_the_final_eos(tok):
    """LLaMA-Factory counts the final EOS before sharing cutoff_len (total_length starts at 1) and appends it
    whatever was cut."""
    conv = Conversation((Message("user", "a b c d e"), Message("assistant", "hello"), Message("user", "x"),
                         Message("assistant", "y")))
    # turn 1: source [gMASK] <sop> <|user|> \n a ␣ b ␣ c ␣ d ␣ e <|assistant|> (14), target \n hello (2)
    # turn 2: source <|user|> \n x <|assistant|> (4), target \n y (2); whole: 14 + 2 + 4 + 2 + EOS = 23
    (whole,), _ = encode_supervised([conv], tok, GLM4, cutoff_len=23)
    assert len(whole.input_ids) == 23 and whole.labels[-3:] == [NL, Y, EOS]

    # cutoff 20: turn 1 fits (16 of 19); turn 2 gets 3: proportional, reply int(3 * 2 / 6) = 1, prompt 2
    (ex,), stats = encode_supervised([conv], tok, GLM4, cutoff_len=20)
    assert ex.input_ids == [GMASK, SOP, USER, NL, A, SP, B, SP, C, SP, D, SP, E, ASSISTANT, NL, HELLO,
                            USER, NL, NL, EOS]
    assert ex.labels == [I] * 14 + [NL, HELLO, EOS, I, NL, EOS]
    assert stats.truncated == 1

    # cutoff 12: turn 1 gets 11: the short reply keeps itself (2), the prompt keeps 9; turn 2 has no room
    (ex,), _ = encode_supervised([conv], tok, GLM4, cutoff_len=12)
    assert ex.input_ids == [GMASK, SOP, USER, NL, A, SP, B, SP, C, NL, HELLO, EOS]
    assert ex.labels == [I] * 9 + [NL, HELLO, EOS]

    # cutoff 3: no reply token is left (the prompt takes the 2 tokens): dropped, as every empty example
    examples, stats = encode_supervised([conv], tok, GLM4, cutoff_len=3)
    assert examples == [] and stats.dropped_empty == 1


def test_mask_history_trains_only_the_last_reply_and_the_final_eos(tok):
    conv = Conversation(TWO_TURNS.messages + (Message("user", "a"), Message("assistant", "b")))
    (ex,), _ = encode_supervised([conv], tok, GLM4, cutoff_len=64, mask_history=True)
    assert ex.input_ids == [GMASK, SOP, USER, NL, HI, ASSISTANT, NL, HELLO, USER, NL, X, ASSISTANT, NL, Y,
                            USER, NL, A, ASSISTANT, NL, B, EOS]
    assert ex.labels == [I] * 18 + [NL, B, EOS]


def test_train_on_prompt_is_refused(tok):
    with pytest.raises(ConfigError, match="template `glm4` does not support `train_on_prompt`"):
        encode_supervised([TWO_TURNS], tok, GLM4, cutoff_len=64, train_on_prompt=True)


def test_the_tokenizer_needs_an_eos(tok):
    from copy import deepcopy

    no_eos = deepcopy(tok)
    no_eos.eos_token = None
    with pytest.raises(ConfigError, match="template `glm4` ends replies with the tokenizer's EOS token, but the "
                                          "tokenizer has none"):
        encode_supervised([TWO_TURNS], no_eos, GLM4, cutoff_len=64)


def test_pairs_end_each_reply_with_eos(tok):
    prompt = (Message("user", "hi"),)
    pair = (Conversation(prompt + (Message("assistant", "hello"),)),
            Conversation(prompt + (Message("assistant", "y"),)))
    (ex,), stats = encode_pairwise([pair], tok, GLM4, cutoff_len=64)
    assert ex.input_ids == [GMASK, SOP, USER, NL, HI, ASSISTANT, NL, HELLO, EOS]
    assert ex.labels == [I] * 6 + [NL, HELLO, EOS]
    assert ex.rejected_input_ids == [GMASK, SOP, USER, NL, HI, ASSISTANT, NL, Y, EOS]
    assert ex.rejected_labels == [I] * 6 + [NL, Y, EOS]
    assert stats.trained_tokens == 6


def test_pairs_cut_the_eos_with_the_reply(tok):
    """LLaMA-Factory appends the EOS before truncation: a cut reply loses it."""
    prompt = (Message("user", "hi"),)
    pair = (Conversation(prompt + (Message("assistant", "hello a b"),)),
            Conversation(prompt + (Message("assistant", "y"),)))
    # prompt 6, longer reply \n hello ␣ a ␣ b EOS (7), cutoff 8: proportional, replies int(8 * 7 / 13) = 4,
    # prompt 4
    (ex,), stats = encode_pairwise([pair], tok, GLM4, cutoff_len=8)
    assert ex.input_ids == [GMASK, SOP, USER, NL, NL, HELLO, SP, A]
    assert ex.labels == [I] * 4 + [NL, HELLO, SP, A]
    assert ex.rejected_input_ids == [GMASK, SOP, USER, NL, NL, Y, EOS]
    assert ex.rejected_labels == [I] * 4 + [NL, Y, EOS]
    assert stats.truncated == 1


def test_feedback_and_its_kl_pairing_end_with_eos(tok):
    convs = [Conversation((Message("user", "hi"), Message("assistant", "hello"))),
             Conversation((Message("user", "x"), Message("assistant", "y")))]
    (first, second), _ = encode_feedback(convs, [True, False], tok, GLM4, cutoff_len=64)
    assert first.input_ids == [GMASK, SOP, USER, NL, HI, ASSISTANT, NL, HELLO, EOS]
    assert first.labels == [I] * 6 + [NL, HELLO, EOS]
    assert first.kl_input_ids == [GMASK, SOP, USER, NL, HI, ASSISTANT, NL, Y, EOS]  # the other example's reply
    assert second.kl_labels == [I] * 6 + [NL, HELLO, EOS]


def test_prompts_are_unchanged(tok):
    (ex,), _ = encode_prompts([TWO_TURNS], tok, GLM4, cutoff_len=64)
    assert ex.input_ids == [GMASK, SOP, USER, NL, HI, ASSISTANT, NL, HELLO, USER, NL, X, ASSISTANT]
    assert ex.labels == [I] * 12


def test_templates_without_efficient_eos_get_no_extra_labels(tok):
    """A template that writes its own end (or none, as `empty`): every label is its token or ignored."""
    for name in ("empty", "default"):
        (ex,), _ = encode_supervised([TWO_TURNS], tok, get_template(name), cutoff_len=64)
        assert all(label in (I, token) for token, label in zip(ex.input_ids, ex.labels)), name
    (ex,), _ = encode_supervised([TWO_TURNS], tok, get_template("empty"), cutoff_len=64)
    assert ex.input_ids == [HI, HELLO, X, Y] and ex.labels == [I, HELLO, I, Y]


def llamafactory_supervised(pairs: list[tuple[list[int], list[int]]], cutoff_len: int) -> tuple[list[int], list[int]]:
    """LLaMA-Factory's SupervisedDatasetProcessor._encode_data_example for an efficient_eos template (no
    mask_history, no train_on_prompt), transcribed."""
    from tunesmith.data.encode import split_budget  # LLaMA-Factory's infer_seqlen

    input_ids, labels = [], []
    total_length = 1
    for turn_idx, (source_ids, target_ids) in enumerate(pairs):
        if total_length >= cutoff_len:
            break
        source_len, target_len = split_budget(len(source_ids), len(target_ids), cutoff_len - total_length)
        source_ids, target_ids = source_ids[:source_len], target_ids[:target_len]
        total_length += source_len + target_len
        source_label = [EOS] + [I] * (source_len - 1) if turn_idx != 0 else [I] * source_len
        input_ids += source_ids + target_ids
        labels += source_label + target_ids
    return input_ids + [EOS], labels + [EOS]


@pytest.mark.parametrize("cutoff_len", range(1, 30))
def test_matches_llamafactory_at_every_cutoff(tok, cutoff_len):
    conv = Conversation((Message("user", "a b c d e"), Message("assistant", "hello a b"), Message("user", "x"),
                         Message("assistant", "y c d"), Message("user", "e"), Message("assistant", "b")))
    pairs = [(tok.encode(p, add_special_tokens=False), tok.encode(r, add_special_tokens=False))
             for p, r in GLM4.turns(conv)]
    ids, labels = llamafactory_supervised(pairs, cutoff_len)
    examples, _ = encode_supervised([conv], tok, GLM4, cutoff_len=cutoff_len)
    if any(label not in (I, EOS) for label in labels):
        (ex,) = examples
        assert (ex.input_ids, ex.labels) == (ids, labels)
    else:  # no reply token left: LLaMA-Factory keeps the example, tunesmith drops it
        assert examples == []
