"""Decoding settings as transformers' GenerationConfig, one builder for chat, api and ppo rollouts."""

from __future__ import annotations

from collections.abc import Sequence


def generation_config(*, do_sample: bool, temperature: float, top_p: float, top_k: int, repetition_penalty: float,
                      stop_ids: Sequence[int], pad_id: int | None, max_new_tokens: int = 0,
                      max_length: int | None = None, num_beams: int = 1, length_penalty: float = 1.0,
                      use_cache: bool = True, suppress_tokens: list[int] | None = None):
    """Sampling only with ``do_sample`` and a positive temperature (else greedy); generation ends at any of
    ``stop_ids``, after ``max_new_tokens`` when positive, else at ``max_length`` tokens in all."""
    from transformers import GenerationConfig

    sample = do_sample and temperature > 0
    kwargs: dict = dict(do_sample=sample, num_beams=num_beams, repetition_penalty=repetition_penalty,
                        eos_token_id=list(stop_ids), pad_token_id=pad_id, use_cache=use_cache)
    if sample:
        kwargs.update(temperature=temperature, top_p=top_p, top_k=top_k)
    if num_beams > 1:
        kwargs["length_penalty"] = length_penalty
    if suppress_tokens:
        kwargs["suppress_tokens"] = suppress_tokens
    if max_new_tokens > 0:
        kwargs["max_new_tokens"] = max_new_tokens
    else:
        kwargs["max_length"] = max_length
    return GenerationConfig(**kwargs)
