"""Named templates, one registration per family. Names and texts follow LLaMA-Factory's registry, so a
config's `template: qwen3_nothink` means what it means there (slot texts, default systems, stop words,
tool formats, thinking). Deliberate differences: text after a reply's end-of-turn token (ChatML's "\\n")
is not trained, and gemma2's "efficient eos" (an extra trained <eos> after the last turn) is not added."""

from __future__ import annotations

import difflib

from ..config.errors import ConfigError
from .base import Template

TEMPLATES: dict[str, Template] = {}


def register(template: Template) -> Template:
    if template.name in TEMPLATES:
        raise ValueError(f"template {template.name!r} registered twice")
    TEMPLATES[template.name] = template
    return template


def get_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        close = difflib.get_close_matches(name, TEMPLATES, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown template `{name}`{hint} Known templates: {', '.join(sorted(TEMPLATES))}") from None


_CHATML_USER = "<|im_start|>user\n{{content}}<|im_end|>\n<|im_start|>assistant\n"
_CHATML = dict(
    user=_CHATML_USER,
    assistant="{{content}}<|im_end|>",
    assistant_sep="\n",
    system="<|im_start|>system\n{{content}}<|im_end|>\n",
)
_QWEN = dict(
    _CHATML,
    function="{{content}}<|im_end|>",
    observation="<|im_start|>user\n<tool_response>\n{{content}}\n</tool_response><|im_end|>\n"
                "<|im_start|>assistant\n",
    stop_words=("<|im_end|>",),
    tool_format="qwen",
)
_GEMMA = dict(
    user="<start_of_turn>user\n{{content}}<end_of_turn>\n<start_of_turn>model\n",
    assistant="{{content}}<end_of_turn>",
    assistant_sep="\n",
    system="{{content}}\n\n",
    observation="<start_of_turn>tool\n{{content}}<end_of_turn>\n<start_of_turn>model\n",
    prefix="{{bos_token}}",
    system_in_first_user=True,
)
_DEEPSEEK3 = dict(user="<｜User｜>{{content}}<｜Assistant｜>", assistant="{{content}}{{eos_token}}",
                  prefix="{{bos_token}}")

# -- plain-text markup ----------------------------------------------------------------------------------
register(Template(name="empty", user="{{content}}", assistant="{{content}}",
                  description="no markup: prompt and reply concatenated (base models)"))
register(Template(
    name="default",
    user="Human: {{content}}{{eos_token}}\nAssistant:",
    assistant="{{content}}{{eos_token}}",
    assistant_sep="\n",
    system="System: {{content}}{{eos_token}}\n",
    description="plain Human:/Assistant: markup (base models)",
))
register(Template(
    name="alpaca",
    user="### Instruction:\n{{content}}\n\n### Response:\n",
    assistant="{{content}}{{eos_token}}",
    assistant_sep="\n\n",
    default_system="Below is an instruction that describes a task. "
                   "Write a response that appropriately completes the request.\n\n",
    description="Stanford Alpaca instruction format",
))
register(Template(
    name="vicuna",
    user="USER: {{content}} ASSISTANT:",
    assistant="{{content}}{{eos_token}}",
    default_system="A chat between a curious user and an artificial intelligence assistant. "
                   "The assistant gives helpful, detailed, and polite answers to the user's questions.",
    description="Vicuna v1.1/v1.5 (system text runs straight into USER:, as in LLaMA-Factory)",
))
register(Template(
    name="zephyr",
    user="<|user|>\n{{content}}{{eos_token}}<|assistant|>\n",
    assistant="{{content}}{{eos_token}}",
    system="<|system|>\n{{content}}{{eos_token}}",
    default_system="You are Zephyr, a helpful assistant.",
    special_tokens=(),  # Zephyr's <|user|> etc. are plain text in its Mistral vocabulary
    description="Zephyr-7B (alpha/beta)",
))
register(Template(
    name="deepseek",
    user="User: {{content}}\n\nAssistant:",
    assistant="{{content}}{{eos_token}}",
    system="{{content}}\n\n",
    prefix="{{bos_token}}",
    description="DeepSeek LLM / DeepSeek-V2 / V2.5 chat",
))

# -- ChatML family --------------------------------------------------------------------------------------
register(Template(
    name="chatml", **_CHATML,
    observation="<|im_start|>tool\n{{content}}<|im_end|>\n<|im_start|>assistant\n",
    stop_words=("<|im_end|>", "<|im_start|>"),
    description="ChatML without a default system message",
))
register(Template(name="yi", **_CHATML, stop_words=("<|im_end|>",), description="Yi / Yi-1.5 chat"))
register(Template(
    name="qwen", **_QWEN,
    default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
    description="Qwen / Qwen1.5 / Qwen2 / Qwen2.5 instruct (ChatML with Qwen's default system, Hermes tools)",
))
register(Template(
    name="qwen3", **_QWEN, reasoning=True,
    description="Qwen3 thinking models (hybrid Qwen3, Qwen3-*-Thinking); empty <think> blocks on plain replies",
))
register(Template(
    name="qwen3_nothink", **_QWEN,
    description="Qwen3 instruct models without thinking (Qwen3-*-Instruct-2507; ChatML, no default system)",
))
register(Template(
    name="phi4",
    user="<|im_start|>user<|im_sep|>{{content}}<|im_end|><|im_start|>assistant<|im_sep|>",
    assistant="{{content}}<|im_end|>",
    system="<|im_start|>system<|im_sep|>{{content}}<|im_end|>",
    stop_words=("<|im_end|>",),
    description="Phi-4 (14B)",
))

# -- other chat families --------------------------------------------------------------------------------
register(Template(
    name="llama2",
    user="{{bos_token}}[INST] {{content}} [/INST]",
    assistant="{{content}}{{eos_token}}",
    system="<<SYS>>\n{{content}}\n<</SYS>>\n\n",
    system_in_first_user=True,
    description="Llama 2 chat",
))
register(Template(
    name="llama3",
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
    description="Llama 3 / 3.1 / 3.2 / 3.3 instruct (JSON tool calls)",
))
register(Template(
    name="mistral",
    user="[INST] {{content}}[/INST]",
    assistant=" {{content}}{{eos_token}}",
    system="{{content}}\n\n",
    function="[TOOL_CALLS] {{content}}{{eos_token}}",
    observation='[TOOL_RESULTS] {"content": {{content}}}[/TOOL_RESULTS]',
    prefix="{{bos_token}}",
    system_in_first_user=True,
    tool_format="mistral",
    description="Mistral-7B-Instruct v0.1-v0.3, Mixtral instruct",
))
register(Template(name="gemma", **_GEMMA, stop_words=("<end_of_turn>",),
                  description="Gemma / CodeGemma instruct (system text goes into the first user turn)"))
register(Template(name="gemma2", **_GEMMA, stop_words=("<eos>", "<end_of_turn>"),
                  description="Gemma 2 instruct (as gemma; also stops at <eos>)"))
register(Template(
    name="phi",
    user="<|user|>\n{{content}}<|end|>\n<|assistant|>\n",
    assistant="{{content}}<|end|>",
    assistant_sep="\n",
    system="<|system|>\n{{content}}<|end|>\n",
    stop_words=("<|end|>",),
    description="Phi-3 / Phi-3.5 mini and medium instruct",
))
register(Template(name="deepseek3", **_DEEPSEEK3,
                  description="DeepSeek-V3 / V3.1 (non-thinking) chat"))
register(Template(name="deepseekr1", **_DEEPSEEK3, reasoning=True,
                  description="DeepSeek-R1 and R1-Distill models (empty <think> blocks on plain replies)"))
