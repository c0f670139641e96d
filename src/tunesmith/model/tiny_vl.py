"""Deterministic tiny vision-language models (Qwen2-VL, Qwen2.5-VL, Qwen3-VL shapes), built offline.

A tiny VL model is a randomly initialised transformers Qwen*-VL model: a vision tower of depth 2 and width 32 and
a language model of width 64 over model/tiny.py's byte-level BPE tokenizer with Qwen-VL's vision tokens added.
The folder holds what a real checkpoint holds (config.json, model.safetensors, generation_config.json, tokenizer
files with a Qwen-VL chat template, preprocessor_config.json, video_preprocessor_config.json), so plain
transformers' AutoModelForImageTextToText loads the model and model/processor.py's load_processor the processor.
Patch sizes are the real ones (14 for Qwen2/2.5-VL, 16 for Qwen3-VL, merged 2x2): a 64x64 image is 4 tokens.

Same arguments -> byte-identical files."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterable

from .qwen_video import IMAGENET_STANDARD, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, QwenVideoProcessor
from .tiny import build_tokenizer

__all__ = ["VL_TINY_FAMILIES", "VISION_TOKENS", "build_tiny_vl_model"]

VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")

# family -> (config class, model class, patch size, mean, std)
VL_TINY_FAMILIES = {
    "qwen2_vl": ("Qwen2VLConfig", "Qwen2VLForConditionalGeneration", 14, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD),
    "qwen2_5_vl": ("Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration", 14, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD),
    "qwen3_vl": ("Qwen3VLConfig", "Qwen3VLForConditionalGeneration", 16, IMAGENET_STANDARD, IMAGENET_STANDARD),
}

_PROCESSOR_CLASS = {"qwen2_vl": "Qwen2VLProcessor", "qwen2_5_vl": "Qwen2_5_VLProcessor",
                    "qwen3_vl": "Qwen3VLProcessor"}

# Qwen-VL's chat template, reduced: string or list content ({"type": "image"|"video"|"text"}), ChatML turns.
_CONTENT = (
    "{%- if message['content'] is string %}{{- message['content'] }}"
    "{%- else %}{%- for part in message['content'] %}"
    "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'video' or 'video' in part %}{{- '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif 'text' in part %}{{- part['text'] }}{%- endif %}"
    "{%- endfor %}{%- endif %}"
)


def _chat_template(default_system: bool) -> str:
    system = ("{%- if messages[0]['role'] != 'system' %}"
              "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
              if default_system else "")
    return (system + "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' }}" + _CONTENT
            + "{{- '<|im_end|>\\n' }}{%- endfor %}"
            "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")


def _family(name: str) -> tuple:
    try:
        return VL_TINY_FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown tiny VL family {name!r}; choose from {sorted(VL_TINY_FAMILIES)}") from None


def _vision_config(family: str, patch: int, width: int, hidden: int) -> dict:
    common = dict(depth=2, num_heads=2, in_channels=3, patch_size=patch, spatial_merge_size=2,
                  temporal_patch_size=2, initializer_range=0.02)
    if family == "qwen2_vl":
        return dict(common, embed_dim=width, hidden_size=hidden, mlp_ratio=2)
    if family == "qwen2_5_vl":
        return dict(common, hidden_size=width, intermediate_size=2 * width, out_hidden_size=hidden,
                    window_size=4 * patch * 2, fullatt_block_indexes=[1], tokens_per_second=2)
    return dict(common, hidden_size=width, intermediate_size=2 * width, out_hidden_size=hidden,
                num_position_embeddings=64, deepstack_visual_indexes=[0])


def _text_config(family: str, vocab: int, hidden: int, layers: int, ids: dict) -> dict:
    heads = 4
    head_dim = hidden // heads
    section = [head_dim // 4, head_dim // 8, head_dim // 8] if family == "qwen3_vl" else \
        [head_dim // 2 - 2 * (3 * head_dim // 16), 3 * head_dim // 16, 3 * head_dim // 16]
    rope = {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": section}
    if family == "qwen3_vl":
        rope["mrope_interleaved"] = True
    config = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                  num_attention_heads=heads, num_key_value_heads=2, max_position_embeddings=4096, rms_norm_eps=1e-6,
                  rope_parameters=rope, pad_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"])
    if family == "qwen3_vl":
        config["head_dim"] = head_dim
    else:
        config["bos_token_id"] = ids["<|endoftext|>"]
    return config


def _image_processor_config(family: str, patch: int, mean, std) -> dict:
    min_pixels, max_pixels = 32 * 32, 256 * 256
    return {"image_processor_type": "Qwen2VLImageProcessor", "processor_class": _PROCESSOR_CLASS[family],
            "do_resize": True, "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
            "image_mean": list(mean), "image_std": list(std), "do_convert_rgb": True,
            "size": {"shortest_edge": min_pixels, "longest_edge": max_pixels},
            "patch_size": patch, "temporal_patch_size": 2, "merge_size": 2}


def _video_processor(family: str, patch: int, mean, std) -> QwenVideoProcessor:
    budget = 32 * 32 * 2 if family == "qwen3_vl" else 32 * 32  # Qwen3-VL counts frames in the budget
    longest = 128 * 128 * 16 if family == "qwen3_vl" else 128 * 128
    return QwenVideoProcessor(family="qwen3_vl" if family == "qwen3_vl" else "qwen2_vl", patch_size=patch,
                              temporal_patch_size=2, merge_size=2, min_pixels=budget, max_pixels=longest,
                              image_mean=tuple(mean), image_std=tuple(std))


def build_tiny_vl_model(family: str, out_dir: str | pathlib.Path, seed: int = 0, *, vocab_size: int = 1024,
                        hidden_size: int = 64, num_layers: int = 2, vision_width: int = 32,
                        extra_corpus: Iterable[str] = ()) -> pathlib.Path:
    """Build a seeded, randomly initialised tiny VL model with its tokenizer and processor files in `out_dir`.

    `vocab_size` is the text tokenizer's size (model/tiny.py); the five vision tokens come after it and the
    embedding is rounded up to a multiple of 64 rows."""
    import torch
    import transformers
    from tokenizers import AddedToken

    config_class, model_class, patch, mean, std = _family(family)
    if hidden_size % 32:  # 4 heads whose rotary halves split into Qwen-VL's three (t, h, w) sections
        raise ValueError(f"hidden_size of a tiny VL model must be a multiple of 32, got {hidden_size}")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    extra_corpus = tuple(extra_corpus)

    tokenizer = build_tokenizer("qwen2", vocab_size, extra_corpus)
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in VISION_TOKENS], special_tokens=True)
    tokenizer.chat_template = _chat_template(default_system=family != "qwen3_vl")
    tokenizer.model_max_length = 4096
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (*VISION_TOKENS, "<|endoftext|>", "<|im_end|>")}

    text = _text_config(family, -(-len(tokenizer) // 64) * 64, hidden_size, num_layers, ids)
    config = getattr(transformers, config_class)(
        text_config=text, vision_config=_vision_config(family, patch, vision_width, hidden_size),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True)
    with torch.random.fork_rng(devices=[]):  # seed the init without disturbing the caller's RNG state
        torch.manual_seed(seed)
        model = getattr(transformers, model_class)(config).to(torch.float32)
    model.generation_config = transformers.GenerationConfig(
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]], pad_token_id=ids["<|endoftext|>"])
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)

    image_config = _image_processor_config(family, patch, mean, std)
    video_config = dict(_video_processor(family, patch, mean, std).to_dict(), processor_class=_PROCESSOR_CLASS[family])
    for name, values in (("preprocessor_config.json", image_config), ("video_preprocessor_config.json", video_config)):
        (out / name).write_text(json.dumps(values, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    record = {"family": family, "vocab_size": vocab_size, "hidden_size": hidden_size, "num_layers": num_layers,
              "vision_width": vision_width, "seed": seed, "extra_corpus_lines": len(extra_corpus)}
    (out / "tiny_model.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return out

