"""Named templates, one registration per family. Names and texts follow LLaMA-Factory's registry, so a
config's `template: qwen3_nothink` means what it means there; the one deliberate difference is that
text after a reply's end-of-turn token (ChatML's "\\n") is not trained."""

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
_QWEN_TOOL = dict(
    function="{{content}}<|im_end|>",
    observation="<|im_start|>user\n<tool_response>\n{{content}}\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
)

register(Template(name="empty", user="{{content}}", assistant="{{content}}",
                  description="no markup: prompt and reply concatenated"))
register(Template(
    name="default",
    user="Human: {{content}}{{eos_token}}\nAssistant:",
    assistant="{{content}}{{eos_token}}",
    assistant_sep="\n",
    system="System: {{content}}{{eos_token}}\n",
    description="plain Human:/Assistant: markup",
))
register(Template(
    name="alpaca",
    user="### Instruction:\n{{content}}\n\n### Response:\n",
    assistant="{{content}}{{eos_token}}",
    assistant_sep="\n\n",
    default_system="Below is an instruction that describes a task. "
                   "Write a response that appropriately completes the request.\n\n",
    description="Stanford Alpaca",
))
register(Template(
    name="chatml", **_CHATML,
    observation="<|im_start|>tool\n{{content}}<|im_end|>\n<|im_start|>assistant\n",
    stop_words=("<|im_end|>", "<|im_start|>"),
    description="ChatML without a default system message",
))
register(Template(
    name="qwen", **_CHATML, **_QWEN_TOOL,
    default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
    stop_words=("<|im_end|>",),
    description="Qwen / Qwen2 / Qwen2.5 (ChatML with Qwen's default system message)",
))
register(Template(
    name="qwen3_nothink", **_CHATML, **_QWEN_TOOL,
    stop_words=("<|im_end|>",),
    description="Qwen3 instruct models without thinking (ChatML, no default system)",
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
    description="Llama 3 / 3.1 / 3.2 / 3.3 instruct",
))
register(Template(
    name="llama2",
    user="{{bos_token}}[INST] {{content}} [/INST]",
    assistant="{{content}}{{eos_token}}",
    system="<<SYS>>\n{{content}}\n<</SYS>>\n\n",
    system_in_first_user=True,
    description="Llama 2 chat",
))
register(Template(
    name="mistral",
    user="[INST] {{content}}[/INST]",
    assistant=" {{content}}{{eos_token}}",
    system="{{content}}\n\n",
    prefix="{{bos_token}}",
    system_in_first_user=True,
    description="Mistral instruct",
))
