"""Where generation stops: the token ids that end a reply (chat, api, ppo rollouts alike)."""

from __future__ import annotations

from .base import Template


def stop_token_ids(tokenizer, template) -> list[int]:
    """eos, the template's stop words, and (for a named template) the end-of-turn token that closes the
    assistant slot; words that are not a single token of this tokenizer are left to the stop strings."""
    ids: list[int] = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    words = list(template.stop_words or ())
    if isinstance(template, Template) and "{{content}}" in template.assistant:
        words.append(template.assistant.split("{{content}}")[-1].replace("{{eos_token}}",
                                                                          tokenizer.eos_token or "").strip())
    for word in filter(None, words):
        encoded = tokenizer.encode(word, add_special_tokens=False)
        if len(encoded) == 1 and encoded[0] not in ids:
            ids.append(encoded[0])
    return ids
