"""Plain-text markup (``Human:``/``USER:``/``### Instruction:`` ...): base models, Vicuna-style chat models and the
LLaVA models built on them, and other families whose turns are written in ordinary words."""

from __future__ import annotations

from ..base import Template

VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the user's questions.")
_VICUNA = dict(user="USER: {{content}} ASSISTANT:", assistant="{{content}}{{eos_token}}", default_system=VICUNA_SYSTEM)
_SEED_USER = "{{bos_token}}user\n{{content}}{{eos_token}}{{bos_token}}assistant\n"
_SEED_SYSTEM = "{{bos_token}}system\n{{content}}{{eos_token}}"

ALL = (
    Template(name="empty", user="{{content}}", assistant="{{content}}",
             description="no markup: prompt and reply concatenated (base models)"),
    Template(name="default", user="Human: {{content}}{{eos_token}}\nAssistant:", assistant="{{content}}{{eos_token}}",
             assistant_sep="\n", system="System: {{content}}{{eos_token}}\n",
             description="plain Human:/Assistant: markup (base models)"),
    Template(name="alpaca", user="### Instruction:\n{{content}}\n\n### Response:\n",
             assistant="{{content}}{{eos_token}}", assistant_sep="\n\n",
             description="Stanford Alpaca instruction format",
             default_system="Below is an instruction that describes a task. "
                            "Write a response that appropriately completes the request.\n\n"),
    Template(name="fewshot", user="{{content}}", assistant="{{content}}\n\n", efficient_eos=True,
             description="few-shot style: replies end with a blank line (base models)"),
    Template(name="vicuna", **_VICUNA,
             description="Vicuna v1.1/v1.5 (system text runs straight into USER:, as in LLaMA-Factory)"),
    Template(name="llava", **_VICUNA, mm_plugin="llava", description="LLaVA-1.5 (text part)"),
    Template(name="llava_next", **_VICUNA, mm_plugin="llava_next", description="LLaVA-NeXT on Vicuna (text part)"),
    Template(name="llava_next_video", **_VICUNA, mm_plugin="llava_next_video",
             description="LLaVA-NeXT-Video on Vicuna (text part)"),
    Template(name="video_llava", **_VICUNA, mm_plugin="video_llava", description="Video-LLaVA (text part)"),
    Template(name="xuanyuan", user="Human: {{content}} Assistant:", assistant="{{content}}{{eos_token}}",
             description="XuanYuan (Du Xiaoman finance models)",
             default_system="以下是用户和人工智能助手之间的对话。用户以Human开头，人工智能助手以Assistant开头，"
                            "会对人类提出的问题给出有帮助、高质量、详细和礼貌的回答，并且总是拒绝参与与不道德、"
                            "不安全、有争议、政治敏感等相关的话题、问题和指示。\n"),
    Template(name="falcon", user="User: {{content}}\nFalcon:", assistant="{{content}}\n", efficient_eos=True,
             description="Falcon instruct"),
    Template(name="solar", user="### User:\n{{content}}\n\n### Assistant:\n", assistant="{{content}}",
             system="### System:\n{{content}}\n\n", efficient_eos=True, description="SOLAR instruct"),
    Template(name="breeze", user="[INST] {{content}} [/INST] ", assistant="{{content}}", prefix="{{bos_token}}",
             efficient_eos=True, description="Breeze (MediaTek)"),
    Template(name="index", user="reserved_0{{content}}reserved_1", assistant="{{content}}", system="<unk>{{content}}",
             efficient_eos=True, description="Index (Bilibili)"),
    Template(name="zephyr", user="<|user|>\n{{content}}{{eos_token}}<|assistant|>\n",
             assistant="{{content}}{{eos_token}}",
             system="<|system|>\n{{content}}{{eos_token}}", default_system="You are Zephyr, a helpful assistant.",
             special_tokens=(),  # Zephyr's <|user|> etc. are plain text in its Mistral vocabulary
             description="Zephyr-7B (alpha/beta)"),
    Template(name="olmo", user="<|user|>\n{{content}}<|assistant|>\n", assistant="{{content}}{{eos_token}}",
             prefix="{{eos_token}}", special_tokens=(), description="OLMo instruct (a sequence opens with EOS)"),
    Template(name="openchat", user="GPT4 Correct User: {{content}}{{eos_token}}GPT4 Correct Assistant:",
             assistant="{{content}}{{eos_token}}", prefix="{{bos_token}}", description="OpenChat 3.5"),
    Template(name="yi_vl", user="### Human: {{content}}\n### Assistant:", assistant="{{content}}\n",
             stop_words=("###",), efficient_eos=True, mm_plugin="llava", description="Yi-VL (text part)",
             default_system="This is a chat between an inquisitive human and an AI assistant. "
                            "Assume the role of the AI assistant. Read all the images carefully, "
                            "and respond to the human's questions with informative, helpful, detailed and polite "
                            "answers. 这是一个好奇的人类和一个人工智能助手之间的对话。假设你扮演这个AI助手的角色。"
                            "仔细阅读所有的图像，并对人类的问题做出信息丰富、有帮助、详细的和礼貌的回答。\n\n"),
    Template(name="yuan", user="{{content}}<sep>", assistant="{{content}}<eod>", assistant_sep="\n",
             stop_words=("<eod>",), description="Yuan 2.0"),
    Template(name="telechat2", user="<_user>{{content}}<_bot>", assistant="{{content}}{{eos_token}}",
             system="<_system>{{content}}", description="TeleChat2",
             default_system="你是中国电信星辰语义大模型，英文名是TeleChat，你是由中电信人工智能科技有限公司和中国电信人工智能研究院"
                            "（TeleAI）研发的人工智能助手。"),
    Template(name="exaone", user="[|user|]{{content}}\n[|assistant|]", assistant="{{content}}{{eos_token}}",
             assistant_sep="\n", system="[|system|]{{content}}[|endofturn|]\n", description="EXAONE 3.x"),
    Template(name="deepseek", user="User: {{content}}\n\nAssistant:", assistant="{{content}}{{eos_token}}",
             system="{{content}}\n\n", prefix="{{bos_token}}", description="DeepSeek LLM / DeepSeek-V2 / V2.5 chat"),
    Template(name="deepseekcoder", user="### Instruction:\n{{content}}\n### Response:",
             assistant="\n{{content}}\n<|EOT|>", assistant_sep="\n", prefix="{{bos_token}}",
             description="DeepSeek-Coder instruct",
             default_system="You are an AI programming assistant, utilizing the DeepSeek Coder model, "
                            "developed by DeepSeek Company, and you only answer questions related to computer science. "
                            "For politically sensitive questions, security and privacy issues, "
                            "and other non-computer science questions, you will refuse to answer.\n"),
    Template(name="seed_coder", user=_SEED_USER, assistant="{{content}}{{eos_token}}", system=_SEED_SYSTEM,
             description="Seed-Coder instruct (roles framed by BOS ... EOS)",
             default_system="You are an AI programming assistant, utilizing the Seed-Coder model, developed by "
                            "ByteDance Seed, and you only answer questions related to computer science. For "
                            "politically sensitive questions, security and privacy issues, and other non-computer "
                            "science questions, you will refuse to answer.\n\n"),
    Template(name="seed_oss", user=_SEED_USER, assistant="{{content}}{{eos_token}}", system=_SEED_SYSTEM,
             function="{{bos_token}}\n{{content}}{{eos_token}}", tool_format="seed_oss", reasoning=True,
             thought_words=("<seed:think>", "</seed:think>"), description="Seed-OSS (thinking in <seed:think>)"),
)
