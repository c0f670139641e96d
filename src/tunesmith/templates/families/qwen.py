"""Qwen-style ChatML: tool results in a user turn inside ``<tool_response>``, Hermes ``<tool_call>`` blocks (or
Qwen3.5's XML parameters), EOS replaced by ``<|im_end|>``. Vision/audio variants register their text part."""

from __future__ import annotations

from ..base import Template
from .chatml import CHATML, HELPFUL

QWEN = dict(
    CHATML,
    function="{{content}}<|im_end|>",
    observation="<|im_start|>user\n<tool_response>\n{{content}}\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
    stop_words=("<|im_end|>",),
    tool_format="qwen",
    replace_eos=True,
)
QWEN3_5 = dict(QWEN, tool_format="qwen3_5", mm_plugin="qwen3_vl")

ALL = (
    Template(name="qwen", **QWEN, default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
             description="Qwen / Qwen1.5 / Qwen2 / Qwen2.5 instruct (ChatML with Qwen's default system, Hermes tools)"),
    Template(name="qwen3", **QWEN, reasoning=True,
             description="Qwen3 thinking models (hybrid Qwen3, Qwen3-*-Thinking); empty <think> blocks on plain "
                         "replies"),
    Template(name="qwen3_nothink", **QWEN,
             description="Qwen3 instruct models without thinking (Qwen3-*-Instruct-2507; ChatML, no default system)"),
    Template(name="qwen2_vl", **QWEN, default_system=HELPFUL, mm_plugin="qwen2_vl",
             description="Qwen2-VL / Qwen2.5-VL (text part)"),
    Template(name="qwen3_vl", **QWEN, reasoning=True, mm_plugin="qwen3_vl",
             description="Qwen3-VL thinking models (text part)"),
    Template(name="qwen3_vl_nothink", **QWEN, mm_plugin="qwen3_vl", description="Qwen3-VL instruct (text part)"),
    Template(name="qwen3_5", **QWEN3_5, reasoning=True, description="Qwen3.5 thinking (XML tool parameters)"),
    Template(name="qwen3_5_nothink", **QWEN3_5, description="Qwen3.5 without thinking (XML tool parameters)"),
    Template(name="qwen3_6", **QWEN3_5, reasoning=True, description="Qwen3.6 (reasoning-only; as qwen3_5)"),
    Template(name="qwen2_omni", **QWEN, default_system=HELPFUL, mm_plugin="qwen2_omni",
             description="Qwen2.5-Omni (text part)"),
    Template(name="qwen3_omni", **QWEN, reasoning=True, mm_plugin="qwen2_omni",
             description="Qwen3-Omni thinking (text part)"),
    Template(name="qwen3_omni_nothink", **QWEN, mm_plugin="qwen2_omni", description="Qwen3-Omni instruct (text part)"),
    Template(name="keye_vl", **QWEN, reasoning=True, mm_plugin="qwen2_vl", description="Kwai Keye-VL (text part)"),
    Template(name="mimo", **QWEN, default_system=HELPFUL, reasoning=True, description="Xiaomi MiMo"),
    Template(name="mimo_v2", **QWEN, default_system="You are MiMo, a helpful AI assistant engineered by Xiaomi.",
             reasoning=True, thought_words=("<think>", "</think>"), description="Xiaomi MiMo-V2"),
    Template(name="mimo_vl", **QWEN, default_system="You are MiMo, an AI assistant developed by Xiaomi.",
             reasoning=True, mm_plugin="qwen2_vl", description="Xiaomi MiMo-VL (text part)"),
    Template(name="moss_vl", **QWEN, strip_tool_newlines=True, mm_plugin="moss_vl",
             description="MOSS-VL (text part; a tools prompt without a system message starts at '# Tools')"),
    Template(name="llava_next_qwen", **QWEN, default_system=HELPFUL, mm_plugin="llava_next",
             description="LLaVA-NeXT on Qwen (text part)"),
)
