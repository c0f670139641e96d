"""Llama 2 / 3 / 4 and Mistral families (``[INST]`` markup puts the system text inside the first user turn)."""

from __future__ import annotations

from ..base import Template

_LLAMA2 = dict(
    user="{{bos_token}}[INST] {{content}} [/INST]",
    assistant="{{content}}{{eos_token}}",
    system="<<SYS>>\n{{content}}\n<</SYS>>\n\n",
    system_in_first_user=True,
)
LLAMA3 = dict(
    user="<|start_header_id|>user<|end_header_id|>\n\n{{content}}<|eot_id|>"
         "<|start_header_id|>assistant<|end_header_id|>\n\n",
    assistant="{{content}}<|eot_id|>",
    system="<|start_header_id|>system<|end_header_id|>\n\n{{content}}<|eot_id|>",
    function="{{content}}<|eot_id|>",
    observation="<|start_header_id|>ipython<|end_header_id|>\n\n{{content}}<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n",
    prefix="{{bos_token}}",
    stop_words=("<|eot_id|>", "<|eom_id|>"),
    tool_format="llama3",
    replace_eos=True,
)
_MISTRAL = dict(  # tokenizer v3: a space after [INST] and before the reply
    user="[INST] {{content}}[/INST]",
    assistant=" {{content}}{{eos_token}}",
    system="{{content}}\n\n",
    function="[TOOL_CALLS] {{content}}{{eos_token}}",
    observation='[TOOL_RESULTS] {"content": {{content}}}[/TOOL_RESULTS]',
    prefix="{{bos_token}}",
    tool_format="mistral",
)
_TEKKEN = dict(  # tokenizers v3 tekken / v7: no spaces
    user="[INST]{{content}}[/INST]",
    assistant="{{content}}{{eos_token}}",
    system="{{content}}\n\n",
    function="[TOOL_CALLS]{{content}}{{eos_token}}",
    observation='[TOOL_RESULTS]{"content": {{content}}}[/TOOL_RESULTS]',
    prefix="{{bos_token}}",
    tool_format="mistral",
)

ALL = (
    Template(name="llama2", **_LLAMA2, description="Llama 2 chat"),
    Template(name="llama2_zh", **_LLAMA2, default_system="You are a helpful assistant. 你是一个乐于助人的助手。",
             description="Chinese Llama 2 chat (Llama 2 with a bilingual default system)"),
    Template(name="llama3", **LLAMA3, description="Llama 3 / 3.1 / 3.2 / 3.3 instruct (JSON tool calls)"),
    Template(name="mllama", **LLAMA3, mm_plugin="mllama", description="Llama 3.2 Vision (text part)"),
    Template(name="llava_next_llama3", **LLAMA3, mm_plugin="llava_next",
             description="LLaVA-NeXT on Llama 3 (text part)"),
    Template(
        name="llama4",
        user="<|header_start|>user<|header_end|>\n\n{{content}}<|eot|><|header_start|>assistant<|header_end|>\n\n",
        assistant="{{content}}<|eot|>",
        system="<|header_start|>system<|header_end|>\n\n{{content}}<|eot|>",
        function="{{content}}<|eot|>",
        observation="<|header_start|>ipython<|header_end|>\n\n{{content}}<|eot|>"
                    "<|header_start|>assistant<|header_end|>\n\n",
        prefix="{{bos_token}}",
        stop_words=("<|eot|>", "<|eom|>"),
        tool_format="llama3",
        replace_eos=True,
        mm_plugin="llama4",
        description="Llama 4 Scout / Maverick (text part)",
    ),
    Template(
        name="openchat-3.6",
        user="<|start_header_id|>GPT4 Correct User<|end_header_id|>\n\n{{content}}<|eot_id|>"
             "<|start_header_id|>GPT4 Correct Assistant<|end_header_id|>\n\n",
        assistant="{{content}}{{eos_token}}",
        prefix="{{bos_token}}",
        stop_words=("<|eot_id|>",),
        description="OpenChat 3.6 (Llama 3 based)",
    ),
    Template(name="mistral", **_MISTRAL, system_in_first_user=True,
             description="Mistral-7B-Instruct v0.1-v0.3, Mixtral instruct"),
    Template(name="llava_next_mistral", **_MISTRAL, system_in_first_user=True, mm_plugin="llava_next",
             description="LLaVA-NeXT on Mistral (text part)"),
    Template(name="llava_next_video_mistral", **_MISTRAL, system_in_first_user=True, mm_plugin="llava_next_video",
             description="LLaVA-NeXT-Video on Mistral (text part)"),
    Template(name="ministral", **_TEKKEN, system_in_first_user=True,
             description="Ministral / Mistral-Nemo (tokenizer v3 tekken)"),
    Template(name="ministral3", **_TEKKEN, system_in_first_user=True, mm_plugin="pixtral",
             description="Ministral 3 (text part)"),
    Template(name="pixtral", **_TEKKEN, system_in_first_user=True, mm_plugin="pixtral",
             description="Pixtral (text part)"),
    Template(name="mistral_small", **{**_TEKKEN, "system": "[SYSTEM_PROMPT]{{content}}[/SYSTEM_PROMPT]"},
             mm_plugin="pixtral", description="Mistral-Small 3.x (tokenizer v7; own system block; text part)"),
)
