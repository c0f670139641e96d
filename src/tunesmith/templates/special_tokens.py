"""LLaMA-Factory's ``Template.fix_special_tokens``: what a template changes in the tokenizer before encoding.

* ``replace_eos`` templates (ChatML, Qwen, Llama 3, Gemma, Phi, ...): the tokenizer's EOS becomes the template's
  first stop word (added to the vocabulary when missing), so that what the template writes after a reply is
  the token generation stops at, and ``eos_token_id`` (e.g. the padding-free EOS of pretraining) agrees with it;
* a tokenizer without an EOS gets ``<|endoftext|>``, one without a pad token pads with its EOS;
* the other stop words become special tokens (added when missing), so they are never split and are skipped
  when decoding with ``skip_special_tokens``.

Nothing changes when the tokenizer already agrees, e.g. a Qwen instruct tokenizer (EOS ``<|im_end|>``) with
the ``qwen`` template. A new token needs an embedding row: the model is resized to ``len(tokenizer)``.
The tokenizer's own chat template (no ``template``) has no stop words here, as LLaMA-Factory's parsed one.
"""

from __future__ import annotations

from ..config.errors import ConfigError
from .base import Template

FALLBACK_EOS = "<|endoftext|>"


def fix_special_tokens(template, tokenizer) -> list[str]:
    """Apply ``template``'s special-token settings to ``tokenizer`` in place; returns what changed, one line each
    (empty when nothing did)."""
    changes: list[str] = []
    stop_words = list(template.stop_words) if isinstance(template, Template) else []
    if getattr(template, "replace_eos", False):
        if not stop_words:
            raise ConfigError(f"template `{template.name}` replaces the EOS token with its first stop word, but "
                              "has no stop words")
        changes += _set_eos(tokenizer, stop_words.pop(0), f"template `{template.name}`'s end of turn")
    if tokenizer.eos_token_id is None:
        changes += _set_eos(tokenizer, FALLBACK_EOS, "the tokenizer had none")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
        changes.append(f"pad_token: {tokenizer.eos_token!r} (the EOS token; the tokenizer had none)")
    special = set(tokenizer.all_special_tokens)
    missing = [word for word in dict.fromkeys(stop_words) if word not in special]
    if missing:
        known = {word: _in_vocab(tokenizer, word) for word in missing}
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
        changes += [f"stop word {word!r}: {'marked special' if known[word] else 'added as a new special token'}"
                    for word in missing]
    return changes


def _set_eos(tokenizer, token: str, why: str) -> list[str]:
    old = tokenizer.eos_token
    if old == token:
        return []
    new = not _in_vocab(tokenizer, token)
    tokenizer.add_special_tokens({"eos_token": token})
    was = f"was {old!r}" if old is not None else "none before"
    return [f"eos_token: {token!r} ({why}; {was}{'; a new token' if new else ''})"]


def _in_vocab(tokenizer, token: str) -> bool:
    return token in tokenizer.get_vocab()
