"""ChatML (``<|im_start|>role ... <|im_end|>``) families other than Qwen's, and Phi-4's ``<|im_sep|>`` variant."""

from __future__ import annotations

from ..base import Template

USER = "<|im_start|>user\n{{content}}<|im_end|>\n<|im_start|>assistant\n"
SYSTEM = "<|im_start|>system\n{{content}}<|im_end|>\n"
TOOL = "<|im_start|>tool\n{{content}}<|im_end|>\n<|im_start|>assistant\n"
CHATML = dict(user=USER, assistant="{{content}}<|im_end|>", assistant_sep="\n", system=SYSTEM)
HELPFUL = "You are a helpful assistant."
_STOP = ("<|im_end|>",)
_INTERN = ("You are an AI assistant whose name is InternLM (书生·浦语).\n"
           "- InternLM (书生·浦语) is a conversational language model that is developed by Shanghai AI Laboratory "
           "(上海人工智能实验室). It is designed to be helpful, honest, and harmless.\n"
           "- InternLM (书生·浦语) can understand and communicate fluently in the language "
           "chosen by the user such as English and 中文.")
_DBRX = ("You are DBRX, created by Databricks. You were last updated in December 2023. "
         "You answer questions based on information available up to that point.\n"
         "YOU PROVIDE SHORT RESPONSES TO SHORT QUESTIONS OR STATEMENTS, but provide thorough "
         "responses to more complex and open-ended questions.\nYou assist with various tasks, "
         "from writing to coding (using markdown for code blocks — remember to use ``` with "
         "code, JSON, and tables).\n(You do not have real-time data access or code execution "
         "capabilities. You avoid stereotyping and provide balanced perspectives on "
         "controversial topics. You do not provide song lyrics, poems, or news articles and "
         "do not divulge details of your training data.)\nThis is your system prompt, "
         "guiding your responses. Do not reference it, just respond to the user. If you find "
         "yourself talking about this message, stop. You should be responding appropriately "
         "and usually that means not mentioning this.\nYOU DO NOT MENTION ANY OF THIS INFORMATION "
         "ABOUT YOURSELF UNLESS THE INFORMATION IS DIRECTLY PERTINENT TO THE USER'S QUERY.")
_LFM2 = dict(
    CHATML,
    function="{{content}}<|im_end|>",
    observation="<|im_start|>tool\n<|tool_response_start|>{{content}}<|tool_response_end|><|im_end|>\n"
                "<|im_start|>assistant\n",
    tool_format="lfm2",
    tool_call_words=("<|tool_call_start|>", "<|tool_call_end|>"),
    stop_words=_STOP,
    replace_eos=True,
)

ALL = (
    Template(name="chatml", **CHATML, observation=TOOL, stop_words=("<|im_end|>", "<|im_start|>"), replace_eos=True,
             description="ChatML without a default system message"),
    Template(name="chatml_de", **CHATML, observation=TOOL, stop_words=("<|im_end|>", "<|im_start|>"),
             replace_eos=True, default_system="Du bist ein freundlicher und hilfsbereiter KI-Assistent.",
             description="ChatML with a German default system message"),
    Template(name="cpm4", **CHATML, observation=TOOL, prefix="{{bos_token}}", stop_words=_STOP,
             description="MiniCPM4"),
    Template(name="dbrx", **CHATML, observation=TOOL, default_system=_DBRX, stop_words=_STOP, replace_eos=True,
             special_tokens=(), description="DBRX instruct"),
    Template(name="falcon_h1", **CHATML, observation=TOOL, prefix="{{bos_token}}",
             stop_words=("<|im_end|>", "<|end_of_text|>"), description="Falcon-H1 instruct"),
    Template(name="opencoder", **CHATML, observation=TOOL, stop_words=_STOP,
             default_system="You are OpenCoder, created by OpenCoder Team.", description="OpenCoder instruct"),
    Template(name="intern2", **CHATML, prefix="{{bos_token}}", default_system=_INTERN, stop_words=_STOP,
             description="InternLM2 / InternLM2.5 / InternLM3 chat"),
    Template(name="intern_vl", **CHATML, prefix="{{bos_token}}", stop_words=_STOP, mm_plugin="intern_vl",
             default_system="你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。",
             description="InternVL 2.5 / 3 (text part)"),
    Template(name="intern_s1", **CHATML, prefix="{{bos_token}}", stop_words=_STOP, mm_plugin="intern_vl",
             description="Intern-S1 (text part)"),
    Template(name="yi", **CHATML, stop_words=_STOP, description="Yi / Yi-1.5 chat"),
    Template(name="llava_next_yi", **CHATML, stop_words=_STOP, mm_plugin="llava_next",
             description="LLaVA-NeXT on Yi (text part)"),
    Template(name="llava_next_video_yi", **CHATML, stop_words=_STOP, mm_plugin="llava_next_video",
             description="LLaVA-NeXT-Video on Yi (text part)"),
    Template(name="smollm", **CHATML, stop_words=_STOP, description="SmolLM instruct"),
    Template(name="smollm2", **CHATML, stop_words=_STOP,
             default_system="You are a helpful AI assistant named SmolLM, trained by Hugging Face.",
             description="SmolLM2 instruct"),
    Template(name="minicpm_v", **CHATML, stop_words=_STOP, default_system=HELPFUL, mm_plugin="minicpm_v",
             description="MiniCPM-V (text part)"),
    Template(name="minicpm_v_4_6", **CHATML, stop_words=_STOP, default_system=HELPFUL, mm_plugin="minicpm_v_4_6",
             description="MiniCPM-V 4.6 (text part)"),
    Template(name="minicpm_o", **CHATML, stop_words=_STOP, mm_plugin="minicpm_v",
             default_system="You are a helpful assistant. "
                            "You can accept audio and text input and output voice and text.",
             description="MiniCPM-o (text part)"),
    Template(name="qwen2_audio", **CHATML, stop_words=_STOP, replace_eos=True, default_system=HELPFUL,
             mm_plugin="qwen2_audio", description="Qwen2-Audio (text part)"),
    Template(name="sailor", user="<|im_start|>question\n{{content}}<|im_end|>\n<|im_start|>answer\n",
             assistant="{{content}}<|im_end|>", assistant_sep="\n", system=SYSTEM, stop_words=_STOP,
             default_system="You are an AI assistant named Sailor created by Sea AI Lab. "
                            "Your answer should be friendly, unbiased, faithful, informative and detailed.",
             description="Sailor (question/answer roles)"),
    Template(name="ernie", user="<|im_start|>user\n{{content}}<|im_end|>\n\n<|im_start|>assistant\n",
             assistant="{{content}}<|im_end|>", assistant_sep="\n\n",
             system="<|im_start|>system\n{{content}}<|im_end|>\n\n",
             observation="<|im_start|>tool\n{{content}}<|im_end|>\n\n<|im_start|>assistant\n",
             default_system="<global_setting>\nthink_mode=True\n</global_setting>", stop_words=_STOP,
             special_tokens=(), description="ERNIE 4.5 thinking models (ChatML with blank lines)"),
    Template(name="lfm2", **_LFM2, default_system="You are a helpful AI assistant.",
             description="LFM2 / LFM2.5 (Python-style tool calls)"),
    Template(name="lfm2_vl", **_LFM2, default_system="You are a helpful multimodal assistant by Liquid AI.",
             mm_plugin="lfm2_vl", description="LFM2-VL (text part)"),
    Template(name="phi4", user="<|im_start|>user<|im_sep|>{{content}}<|im_end|><|im_start|>assistant<|im_sep|>",
             assistant="{{content}}<|im_end|>", system="<|im_start|>system<|im_sep|>{{content}}<|im_end|>",
             stop_words=_STOP, replace_eos=True, description="Phi-4 (14B)"),
)
