"""Every template name LLaMA-Factory registers resolves in tunesmith, so its users' `template:` lines run unchanged."""

from __future__ import annotations

import pytest

from tunesmith.templates.base import Template
from tunesmith.templates.builtin import TEMPLATES, get_template
from tunesmith.templates.tools import ALL_FORMATS

# The `register_template(name=...)` calls of LLaMA-Factory's src/llamafactory/data/template.py, in file order,
# transcribed from version 0.9.6.dev0 (commit ff6d4d12eeb035d6ce06805a5733dd7b29f2ac30).
LLAMAFACTORY_NAMES = (
    "alpaca", "bailing", "bailing_v2", "breeze", "chatglm3", "chatml", "chatml_de", "cohere", "cpm4", "dbrx",
    "deepseek", "deepseek3", "deepseekr1", "hy3", "deepseekcoder", "default", "dots_ocr", "empty", "ernie",
    "ernie_nothink", "ernie_vl", "exaone", "falcon", "falcon_h1", "fewshot", "gemma", "gemma2", "gemma3", "gemma3n",
    "gemma4", "gemma4n", "glm4", "glm4_moe", "glm4v", "glm4_5v", "glm_ocr", "glm4_7", "glmz1", "gpt_oss", "granite3",
    "granite3_vision", "granite4", "index", "hunyuan", "hunyuan_small", "hy_dense_1_8b", "hy_dense_7b", "intern2",
    "intern_vl", "intern_s1", "keye_vl", "kimi_vl", "lfm2", "lfm2_vl", "llama2", "llama2_zh", "llama3", "llama4",
    "mllama", "moonlight", "moss_vl", "llava", "llava_next", "llava_next_llama3", "llava_next_mistral",
    "llava_next_qwen", "llava_next_yi", "llava_next_video", "llava_next_video_mistral", "llava_next_video_yi", "mimo",
    "mimo_v2", "mimo_vl", "minicpm_v", "minicpm_v_4_6", "minicpm_o", "minimax1", "minimax2", "ministral", "mistral",
    "mistral_small", "ministral3", "olmo", "openchat", "openchat-3.6", "opencoder", "paligemma", "paligemma_chat",
    "phi", "phi_small", "phi4", "phi4_mini", "pixtral", "qwen", "qwen3", "qwen3_nothink", "qwen2_audio", "qwen2_omni",
    "qwen3_omni", "qwen3_omni_nothink", "qwen2_vl", "qwen3_vl", "qwen3_vl_nothink", "qwen3_5", "qwen3_5_nothink",
    "qwen3_6", "sailor", "seed_coder", "seed_oss", "smollm", "smollm2", "solar", "starchat", "telechat2", "vicuna",
    "video_llava", "xuanyuan", "yi", "yi_vl", "youtu", "youtu_vl", "yuan", "zephyr", "aeva",
)
# LLaMA-Factory's ReasoningTemplate (and Glm47ReasoningTemplate) registrations.
REASONING = {"deepseekr1", "hy3", "ernie_vl", "gemma4", "gemma4n", "glm4_moe", "glm4v", "glm4_5v", "glm4_7", "glmz1",
             "gpt_oss", "keye_vl", "kimi_vl", "mimo", "mimo_v2", "mimo_vl", "minimax2", "qwen3", "qwen3_omni",
             "qwen3_vl", "qwen3_5", "qwen3_6", "seed_oss", "youtu", "aeva"}


def test_the_list_is_complete_and_unique():
    assert len(LLAMAFACTORY_NAMES) == len(set(LLAMAFACTORY_NAMES)) == 124


@pytest.mark.parametrize("name", LLAMAFACTORY_NAMES)
def test_name_resolves(name):
    template = get_template(name)
    assert isinstance(template, Template) and template.name == name
    assert template.reasoning == (name in REASONING)
    assert template.tool_format in ALL_FORMATS


def test_every_registered_name_is_a_llamafactory_name():
    assert set(TEMPLATES) == set(LLAMAFACTORY_NAMES)
