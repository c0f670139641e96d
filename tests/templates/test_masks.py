"""What trains, family by family: the reply and its end-of-turn token (plus an empty thought where thinking is on),
never the system text, the user turns or the role headers; text after the end-of-turn token opens the next prompt.
Expected texts are LLaMA-Factory's slots for a system "S", user turns "Q1"/"Q2" and replies "A1"/"A2"."""

from __future__ import annotations

import pytest

from tunesmith.templates.builtin import TEMPLATES, get_template
from tunesmith.types import Conversation, Message

BOS, EOS = "<s>", "</s>"
CONV = Conversation((Message("user", "Q1"), Message("assistant", "A1"), Message("user", "Q2"),
                     Message("assistant", "A2")), system="S")
CHATML_S = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n"
CHATML_2 = "\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n"
EMPTY = "<think>\n\n</think>\n\n"
# name -> (first prompt, first reply, second prompt), one or more per family
FAMILIES = {
    "qwen3_5": (CHATML_S, EMPTY + "A1<|im_end|>", CHATML_2),
    "qwen3_5_nothink": (CHATML_S, "A1<|im_end|>", CHATML_2),
    "qwen2_vl": (CHATML_S, "A1<|im_end|>", CHATML_2),
    "intern_s1": (BOS + CHATML_S, "A1<|im_end|>", CHATML_2),
    "ernie": ("<|im_start|>system\nS<|im_end|>\n\n<|im_start|>user\nQ1<|im_end|>\n\n<|im_start|>assistant\n",
              "A1<|im_end|>", "\n\n<|im_start|>user\nQ2<|im_end|>\n\n<|im_start|>assistant\n"),
    "sailor": ("<|im_start|>system\nS<|im_end|>\n<|im_start|>question\nQ1<|im_end|>\n<|im_start|>answer\n",
               "A1<|im_end|>", "\n<|im_start|>question\nQ2<|im_end|>\n<|im_start|>answer\n"),
    "glm4": ("[gMASK]<sop><|system|>\nS<|user|>\nQ1<|assistant|>", "\nA1", "<|user|>\nQ2<|assistant|>"),
    "glm4_moe": ("[gMASK]<sop><|system|>\nS<|user|>\nQ1<|assistant|>", EMPTY + "\nA1", "<|user|>\nQ2<|assistant|>"),
    "glm4_7": ("[gMASK]<sop><|system|>\nS<|user|>\nQ1<|assistant|>", "</think>\nA1", "<|user|>\nQ2<|assistant|>"),
    "chatglm3": ("[gMASK]sop<|system|>\nS<|user|>\nQ1<|assistant|>", "\nA1", "<|user|>\nQ2<|assistant|>"),
    "gemma3": ("<s><start_of_turn>user\nS\n\nQ1<end_of_turn>\n<start_of_turn>model\n", "A1<end_of_turn>",
               "\n<start_of_turn>user\nQ2<end_of_turn>\n<start_of_turn>model\n"),
    "paligemma_chat": ("<s><start_of_turn>user\nSQ1<end_of_turn>\n<start_of_turn>model\n", "A1<end_of_turn>",
                       "\n<start_of_turn>user\nQ2<end_of_turn>\n<start_of_turn>model\n"),
    "gemma4": ("<s><|turn>system\n<|think|>S<turn|>\n<|turn>user\nQ1<turn|>\n<|turn>model\n",
               "<|channel>thought\n<channel|>A1<turn|>", "\n<|turn>user\nQ2<turn|>\n<|turn>model\n"),
    "llama2_zh": ("<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nQ1 [/INST]", "A1</s>", "<s>[INST] Q2 [/INST]"),
    "llama4": ("<s><|header_start|>system<|header_end|>\n\nS<|eot|><|header_start|>user<|header_end|>\n\nQ1<|eot|>"
               "<|header_start|>assistant<|header_end|>\n\n", "A1<|eot|>",
               "<|header_start|>user<|header_end|>\n\nQ2<|eot|><|header_start|>assistant<|header_end|>\n\n"),
    "mllama": ("<s><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>"
               "\n\nQ1<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", "A1<|eot_id|>",
               "<|start_header_id|>user<|end_header_id|>\n\nQ2<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\n"),
    "ministral": ("<s>[INST]S\n\nQ1[/INST]", "A1</s>", "[INST]Q2[/INST]"),
    "mistral_small": ("<s>[SYSTEM_PROMPT]S[/SYSTEM_PROMPT][INST]Q1[/INST]", "A1</s>", "[INST]Q2[/INST]"),
    "llava_next_mistral": ("<s>[INST] S\n\nQ1[/INST]", " A1</s>", "[INST] Q2[/INST]"),
    "openchat-3.6": ("<s>S<|start_header_id|>GPT4 Correct User<|end_header_id|>\n\nQ1<|eot_id|>"
                     "<|start_header_id|>GPT4 Correct Assistant<|end_header_id|>\n\n", "A1</s>",
                     "<|start_header_id|>GPT4 Correct User<|end_header_id|>\n\nQ2<|eot_id|>"
                     "<|start_header_id|>GPT4 Correct Assistant<|end_header_id|>\n\n"),
    "gpt_oss": ("<|start|>system<|message|>S<|end|><|start|>user<|message|>Q1<|end|><|start|>assistant",
                "<|channel|>analysis<|message|><|end|><|start|>assistant<|channel|>final<|message|>A1",
                "<|start|>user<|message|>Q2<|end|><|start|>assistant"),
    "deepseekcoder": ("<s>S### Instruction:\nQ1\n### Response:", "\nA1\n<|EOT|>",
                      "\n### Instruction:\nQ2\n### Response:"),
    "seed_oss": ("<s>system\nS</s><s>user\nQ1</s><s>assistant\n", "<seed:think></seed:think>A1</s>",
                 "<s>user\nQ2</s><s>assistant\n"),
    "hy3": ("<s>S<｜hy_User｜>Q1<｜hy_Assistant｜>", "<think></think>A1<｜hy_eos｜>", "<｜hy_User｜>Q2<｜hy_Assistant｜>"),
    "hunyuan": ("<|startoftext|>S<|extra_4|>Q1<|extra_0|>", "A1<|eos|>", "Q2<|extra_0|>"),
    "hy_dense_1_8b": ("<s>S<｜hy_place▁holder▁no▁3｜><｜hy_User｜>Q1", "<｜hy_Assistant｜>A1", "<｜hy_User｜>Q2"),
    "phi_small": ("<|system|>\nS<|end|>\n<|user|>\nQ1<|end|>\n<|assistant|>\n", "A1<|end|>",
                  "\n<|user|>\nQ2<|end|>\n<|assistant|>\n"),
    "phi4_mini": ("<|system|>S<|end|><|user|>Q1<|end|><|assistant|>", "A1<|end|>", "<|user|>Q2<|end|><|assistant|>"),
    "granite4": ("<|start_of_role|>system<|end_of_role|>S<|end_of_text|>\n<|start_of_role|>user<|end_of_role|>Q1"
                 "<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>", "A1<|end_of_text|>",
                 "\n<|start_of_role|>user<|end_of_role|>Q2<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>"),
    "cohere": ("<s><|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>S<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|USER_TOKEN|>"
               "Q1<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", "A1</s>",
               "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Q2<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"),
    "bailing_v2": ("<role>SYSTEM</role>S<|role_end|><role>HUMAN</role>Q1<|role_end|><role>ASSISTANT</role>",
                   "A1<|role_end|>", "<role>HUMAN</role>Q2<|role_end|><role>ASSISTANT</role>"),
    "ernie_vl": ("S\nUser: Q1", EMPTY + "\nAssistant: A1<|end_of_sentence|>", "User: Q2"),
    "kimi_vl": ("<|im_system|>system<|im_middle|>S<|im_end|><|im_user|>user<|im_middle|>Q1<|im_end|>"
                "<|im_assistant|>assistant<|im_middle|>", "◁think▷◁/think▷A1<|im_end|>",
                "<|im_user|>user<|im_middle|>Q2<|im_end|><|im_assistant|>assistant<|im_middle|>"),
    "minimax1": ("<beginning_of_sentence>system ai_setting=assistant\nS<end_of_sentence>\n<beginning_of_sentence>user "
                 "name=user\nQ1<end_of_sentence>\n<beginning_of_sentence>ai name=assistant\n", "A1<end_of_sentence>",
                 "\n<beginning_of_sentence>user name=user\nQ2<end_of_sentence>\n"
                 "<beginning_of_sentence>ai name=assistant\n"),
    "minimax2": ("]~!b[]~b]system\nS[e~[\n]~b]user\nQ1[e~[\n]~b]ai\n", EMPTY + "A1[e~[",
                 "\n]~b]user\nQ2[e~[\n]~b]ai\n"),
    "youtu": ("<s>S<|User|>Q1<|Assistant|>", EMPTY + "A1<|end_of_text|>", "<|User|>Q2<|Assistant|>"),
    "dots_ocr": ("<|system|>S<|endofsystem|>\n<|user|>Q1<|endofuser|><|assistant|>", "A1<|endofassistant|>",
                 "<|user|>Q2<|endofuser|><|assistant|>"),
    "falcon": ("SUser: Q1\nFalcon:", "A1\n", "User: Q2\nFalcon:"),  # no end-of-turn token: the newline trains
    "fewshot": ("SQ1", "A1\n\n", "Q2"),
    "solar": ("### System:\nS\n\n### User:\nQ1\n\n### Assistant:\n", "A1", "### User:\nQ2\n\n### Assistant:\n"),
    "olmo": ("</s>S<|user|>\nQ1<|assistant|>\n", "A1</s>", "<|user|>\nQ2<|assistant|>\n"),
    "exaone": ("[|system|]S[|endofturn|]\n[|user|]Q1\n[|assistant|]", "A1</s>", "\n[|user|]Q2\n[|assistant|]"),
    "yuan": ("SQ1<sep>", "A1<eod>", "\nQ2<sep>"),
    "telechat2": ("<_system>S<_user>Q1<_bot>", "A1</s>", "<_user>Q2<_bot>"),
    "llava": ("SUSER: Q1 ASSISTANT:", "A1</s>", "USER: Q2 ASSISTANT:"),
    "paligemma": ("<s>SQ1\n", "A1</s>", "Q2\n"),
}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_masks(name):
    (p1, r1), (p2, r2) = get_template(name).turns(CONV, BOS, EOS)
    assert (p1, r1, p2) == FAMILIES[name]
    assert r2 == r1.replace("A1", "A2")


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_only_replies_train(name):
    template = TEMPLATES[name]
    pairs = template.turns(CONV, BOS, EOS)
    thought = template.empty_thought if template.reasoning and template.enable_thinking else ""
    slot = template.assistant.replace("{{bos_token}}", BOS).replace("{{eos_token}}", EOS)
    assert [r for _, r in pairs] == [thought + slot.replace("{{content}}", a) for a in ("A1", "A2")]
    assert "Q1" in pairs[0][0] and "Q2" in pairs[1][0] and not any(q in r for q in ("Q1", "Q2", "S") for _, r in pairs)
    tail = template.assistant.split("{{content}}")[1]
    assert tail == tail.rstrip() or not tail.strip(), "whitespace after an end-of-turn token belongs to assistant_sep"


def test_efficient_eos_templates_write_no_eos():
    for name, template in TEMPLATES.items():
        if template.efficient_eos:
            assert "{{eos_token}}" not in template.assistant + (template.function or ""), name


def test_replace_eos_templates_never_write_the_eos_placeholder():
    """LLaMA-Factory's replace_eos swaps the tokenizer's EOS for stop_words[0]; rendering `{{eos_token}}` as the
    tokenizer's own EOS is only right because no such template writes it."""
    for name, t in TEMPLATES.items():
        if t.replace_eos:
            assert t.stop_words, name
            slots = (t.prefix, t.user, t.assistant, t.system, t.function or "", t.observation or "")
            assert not any("{{eos_token}}" in slot for slot in slots), name
