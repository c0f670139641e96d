"""Deterministic tiny causal LMs, built offline, for tests and demos.

A tiny model is a randomly initialised Qwen2 or Llama model with a byte-level BPE tokenizer trained
on a small bundled corpus. Everything is saved in plain Hugging Face format, so the output folder
loads with vanilla ``AutoTokenizer.from_pretrained`` / ``AutoModelForCausalLM.from_pretrained`` and
exercises the same code paths as a real checkpoint (chat template, special tokens, tied or untied
head, padded embedding rows), just in milliseconds.

Same arguments -> byte-identical ``tokenizer.json`` and ``model.safetensors``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import pathlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # transformers is imported lazily: importing it costs over a second
    from transformers import PreTrainedTokenizerFast

__all__ = ["FAMILIES", "TinyFamily", "build_tiny_model", "build_tokenizer"]

# Qwen2's pre-tokenizer regex (GPT-4 style, but digits are split one by one).
_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_LLAMA3_TEMPLATE = (
    "{{- '<|begin_of_text|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)


@dataclass(frozen=True)
class TinyFamily:
    """What distinguishes one tiny model family from another."""

    name: str
    tokenizer_group: str  # families sharing a group share one trained tokenizer
    config_class: str  # attribute names in `transformers`
    model_class: str
    tie_word_embeddings: bool
    special_tokens: tuple[str, ...]  # control tokens, appended after the BPE vocabulary in this order
    added_tokens: tuple[str, ...]  # non-special added tokens (still encode as one token each)
    bos_token: str | None
    eos_token: str
    pad_token: str
    end_of_turn: tuple[str, ...]  # generation_config.eos_token_id, in order
    add_bos: bool  # whether `tokenizer(text)` prepends bos_token (via the post-processor)
    chat_template: str


_QWEN2_KW = dict(
    tokenizer_group="qwen2",
    config_class="Qwen2Config",
    model_class="Qwen2ForCausalLM",
    special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
    added_tokens=("<think>", "</think>", "<tool_call>", "</tool_call>"),
    bos_token=None,
    eos_token="<|im_end|>",
    pad_token="<|endoftext|>",
    end_of_turn=("<|im_end|>", "<|endoftext|>"),
    add_bos=False,
    chat_template=_CHATML_TEMPLATE,
)

FAMILIES: dict[str, TinyFamily] = {
    "qwen2": TinyFamily(name="qwen2", tie_word_embeddings=True, **_QWEN2_KW),
    "qwen2-untied": TinyFamily(name="qwen2-untied", tie_word_embeddings=False, **_QWEN2_KW),
    "llama3": TinyFamily(
        name="llama3",
        tokenizer_group="llama3",
        config_class="LlamaConfig",
        model_class="LlamaForCausalLM",
        tie_word_embeddings=False,
        special_tokens=(
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
            "<|eom_id|>",
        ),
        added_tokens=(),
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",  # Llama-3-Instruct ends a turn (and generation) with eot_id
        pad_token="<|end_of_text|>",
        end_of_turn=("<|eot_id|>", "<|end_of_text|>"),
        add_bos=True,
        chat_template=_LLAMA3_TEMPLATE,
    ),
}


def _family(name: str) -> TinyFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown tiny model family {name!r}; choose from {sorted(FAMILIES)}") from None


def _bundled_corpus() -> list[str]:
    text = resources.files("tunesmith").joinpath("resources/tiny_corpus.txt").read_text(encoding="utf-8")
    # One sample per paragraph, newlines kept, so BPE also learns "\n" and indentation merges.
    return [para.strip("\n") + "\n" for para in text.split("\n\n") if para.strip()]


@functools.lru_cache(maxsize=16)
def _trained_tokenizer_json(group: str, vocab_size: int, extra_corpus: tuple[str, ...]) -> str:
    """Train the backend tokenizer once per (group, size, corpus); return its JSON serialisation.

    The JSON string (not a tokenizer object) is cached so every caller gets a fresh, independent
    tokenizer that it may mutate (add tokens, change padding) without affecting later builds.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers import processors, trainers

    family = next(f for f in FAMILIES.values() if f.tokenizer_group == group)
    n_added = len(family.special_tokens) + len(family.added_tokens)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + n_added:
        raise ValueError(f"vocab_size must be at least {len(alphabet) + n_added}, got {vocab_size}")

    # For model_type qwen2, AutoTokenizer ignores tokenizer_class and forces transformers' Qwen2Tokenizer,
    # which rebuilds the backend from vocab/merges with an NFC normalizer and "" subword affixes. Build
    # exactly that here, so the saved tokenizer.json survives a load -> save round trip byte for byte.
    qwen = family.config_class == "Qwen2Config"
    affixes = {"continuing_subword_prefix": "", "end_of_word_suffix": ""} if qwen else {}
    tok = Tokenizer(models.BPE(**affixes))
    if qwen:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT_REGEX), behavior="isolated", invert=False),
            # The regex already split the text, so ByteLevel only maps bytes to its printable alphabet.
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - n_added,  # added tokens come after, as in real Qwen2/Llama 3 vocabularies
        initial_alphabet=alphabet,
        special_tokens=[],
        **affixes,
        show_progress=False,
    )
    tok.train_from_iterator(_bundled_corpus() + list(extra_corpus), trainer=trainer)

    # A small corpus can run out of merges before reaching the target size: fill the gap with
    # reserved control tokens (Llama 3 ships hundreds of these) so len(tokenizer) == vocab_size.
    shortfall = vocab_size - n_added - tok.get_vocab_size()
    reserved = [f"<|reserved_special_token_{i}|>" for i in range(shortfall)]
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in (*family.special_tokens, *reserved)]
    )
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in family.added_tokens])
    if family.add_bos:  # Llama 3 style: `tokenizer(text)` prepends bos; encode(add_special_tokens=False) does not
        bos = family.bos_token
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A",
            pair=f"{bos} $A {bos}:1 $B:1",
            special_tokens=[(bos, tok.token_to_id(bos))],
        )
    return tok.to_str()


def build_tokenizer(
    family: str = "qwen2", vocab_size: int = 1024, extra_corpus: Iterable[str] = ()
) -> PreTrainedTokenizerFast:
    """Train (or fetch from the in-process cache) the byte-level BPE tokenizer of `family`.

    `vocab_size` counts every token, special and added ones included. `extra_corpus` is extra training
    text (e.g. demo data) appended to the bundled corpus.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    fam = _family(family)
    tok_json = _trained_tokenizer_json(fam.tokenizer_group, int(vocab_size), tuple(extra_corpus))
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(tok_json),
        bos_token=fam.bos_token,
        eos_token=fam.eos_token,
        pad_token=fam.pad_token,
        unk_token=None,  # written to tokenizer_config.json as null, else Qwen2Tokenizer defaults it to <|endoftext|>
        model_max_length=2048,
        chat_template=fam.chat_template,
    )


def build_tiny_model(
    out_dir: str | pathlib.Path,
    family: str = "qwen2",
    *,
    vocab_size: int = 1024,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    max_position_embeddings: int = 2048,
    seed: int = 0,
    extra_corpus: Iterable[str] = (),
) -> pathlib.Path:
    """Build a seeded, randomly initialised tiny model + tokenizer and save both to `out_dir`.

    Returns `out_dir` as a Path. The model's embedding has len(tokenizer) rounded up to a multiple
    of 64 rows; like real checkpoints, the extra rows belong to no token (vocab_size=1000 gives 24
    of them; the default 1024 is already a multiple of 64 and gives none).

    Note: for the qwen2 families AutoTokenizer loads the folder as transformers' `Qwen2Tokenizer`
    (it overrides `tokenizer_class` for model_type qwen2); llama3 loads as `TokenizersBackend`.
    """
    import torch
    import transformers

    fam = _family(family)
    extra_corpus = tuple(extra_corpus)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = build_tokenizer(family, vocab_size, extra_corpus)
    tokenizer.model_max_length = max_position_embeddings
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in (*fam.end_of_turn, fam.eos_token, fam.pad_token)}
    bos_id = tokenizer.convert_tokens_to_ids(fam.bos_token) if fam.bos_token else None

    config = getattr(transformers, fam.config_class)(
        vocab_size=-(-len(tokenizer) // 64) * 64,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        rms_norm_eps=1e-6,
        tie_word_embeddings=fam.tie_word_embeddings,
        bos_token_id=bos_id,
        eos_token_id=ids[fam.eos_token],
        pad_token_id=ids[fam.pad_token],
    )
    with torch.random.fork_rng(devices=[]):  # seed the init without disturbing the caller's RNG state
        torch.manual_seed(seed)
        model = getattr(transformers, fam.model_class)(config).to(torch.float32)
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=bos_id,
        eos_token_id=[ids[t] for t in fam.end_of_turn],
        pad_token_id=ids[fam.pad_token],
    )

    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    record = {
        "family": fam.name,
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "num_heads": num_heads,
        "num_kv_heads": num_kv_heads,
        "intermediate_size": intermediate_size,
        "max_position_embeddings": max_position_embeddings,
        "seed": seed,
        "extra_corpus_lines": len(extra_corpus),
        "extra_corpus_sha256": hashlib.sha256(json.dumps(extra_corpus).encode("utf-8")).hexdigest(),
    }
    (out / "tiny_model.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return out
