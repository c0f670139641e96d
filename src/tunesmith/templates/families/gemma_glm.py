"""Gemma (``<start_of_turn>``; Gemma 4's ``<|turn>``), PaliGemma, and the GLM / ChatGLM families (``[gMASK]<sop>``,
replies open with a newline and carry no end-of-turn token: the model stops at ``<|user|>``/``<|observation|>``,
and LLaMA-Factory trains the stop through its efficient EOS)."""

from __future__ import annotations

from ..base import Template

_GEMMA_TURNS = dict(
    user="<start_of_turn>user\n{{content}}<end_of_turn>\n<start_of_turn>model\n",
    assistant="{{content}}<end_of_turn>",
    assistant_sep="\n",
    observation="<start_of_turn>tool\n{{content}}<end_of_turn>\n<start_of_turn>model\n",
    prefix="{{bos_token}}",
    system_in_first_user=True,
)
_GEMMA = dict(_GEMMA_TURNS, system="{{content}}\n\n")
_GEMMA4 = dict(
    user="<|turn>user\n{{content}}<turn|>\n<|turn>model\n",
    assistant="{{content}}<turn|>",
    assistant_sep="\n",
    system="<|turn>system\n<|think|>{{content}}<turn|>\n",  # the thinking switch is part of the system block
    observation="<|turn>tool\n{{content}}<turn|>\n<|turn>model\n",
    function="<|tool>{{content}}<tool|>",
    function_sep="",
    prefix="{{bos_token}}",
    default_system="You are a helpful assistant.",
    stop_words=("<turn|>",),
    tool_format="gemma4",
    reasoning=True,
    thought_words=("<|channel>thought\n", "<channel|>"),
    replace_eos=True,
    mm_plugin="gemma4",
    special_tokens=(),
)
_GLM_STOP = ("<|user|>", "<|observation|>")
GLM4 = dict(
    user="<|user|>\n{{content}}<|assistant|>",
    assistant="\n{{content}}",
    system="<|system|>\n{{content}}",
    function="{{content}}",
    observation="<|observation|>\n{{content}}<|assistant|>",
    prefix="[gMASK]<sop>",
    stop_words=_GLM_STOP,
    tool_format="glm4",
    efficient_eos=True,
)
_GLM4_7 = dict(GLM4, tool_format="glm4_moe", reasoning=True, thought_words=("<think>", "</think>"),
               empty_thought_text="</think>")  # GLM-4.7 marks a reply without thinking by "</think>" alone

ALL = (
    Template(name="gemma", **_GEMMA, stop_words=("<end_of_turn>",), replace_eos=True,
             description="Gemma / CodeGemma instruct (system text goes into the first user turn)"),
    Template(name="gemma2", **_GEMMA, stop_words=("<eos>", "<end_of_turn>"), efficient_eos=True,
             description="Gemma 2 instruct (as gemma; also stops at <eos>)"),
    Template(name="gemma3", **_GEMMA, stop_words=("<end_of_turn>",), replace_eos=True, mm_plugin="gemma3",
             description="Gemma 3 (text part)"),
    Template(name="gemma3n", **_GEMMA, stop_words=("<end_of_turn>",), replace_eos=True, mm_plugin="gemma3n",
             description="Gemma 3n (text part)"),
    Template(name="gemma4", **_GEMMA4, description="Gemma 4 (thinking channel; text part)"),
    Template(name="gemma4n", **_GEMMA4, description="Gemma 4n (thinking channel; text part)"),
    Template(name="paligemma", user="{{content}}\n", assistant="{{content}}{{eos_token}}", prefix="{{bos_token}}",
             system_in_first_user=True, mm_plugin="paligemma", description="PaliGemma (text part)"),
    Template(name="paligemma_chat", **_GEMMA_TURNS, stop_words=("<end_of_turn>",), replace_eos=True,
             mm_plugin="paligemma", description="PaliGemma in Gemma chat turns (text part)"),
    Template(name="glm4", **GLM4, description="GLM-4 chat"),
    Template(name="glm4_moe", **{**GLM4, "tool_format": "glm4_moe"}, reasoning=True,
             description="GLM-4.5 / GLM-4.6 (thinking; XML tool calls)"),
    Template(name="glm4v", **{**GLM4, "stop_words": (*_GLM_STOP, "</answer>")}, reasoning=True, mm_plugin="glm4v",
             description="GLM-4.1V thinking (text part)"),
    Template(name="glm4_5v", **{**GLM4, "stop_words": (*_GLM_STOP, "</answer>"), "tool_format": "glm4_moe"},
             reasoning=True, mm_plugin="glm4v", description="GLM-4.5V (text part)"),
    Template(name="glm_ocr", **GLM4, mm_plugin="glm4v", description="GLM-OCR (text part)"),
    Template(name="glm4_7", **_GLM4_7, description="GLM-4.7 (thinking; an empty thought is '</think>')"),
    Template(name="aeva", **_GLM4_7, description="Aeva (GLM-4.7 format with its own default system)",
             default_system="You are an AI assistant named Aeva created by Zongzhi Lou. "
                            "Your answer should be friendly, unbiased, faithful, informative and detailed."),
    Template(name="glmz1", **GLM4, reasoning=True, description="GLM-Z1 reasoning models"),
    Template(name="chatglm3", **{**GLM4, "prefix": "[gMASK]sop"}, special_tokens=(),
             description="ChatGLM3 ([gMASK] and sop are special tokens of its own tokenizer)"),
)
