"""Chat templates: how a Conversation becomes text segments, each marked trained or not.

A template is declarative: slot strings with ``{{content}}``, ``{{bos_token}}`` and ``{{eos_token}}``
placeholders. ``assistant`` is the trained slot (the reply and its end-of-turn token); text after
the end-of-turn token (``assistant_sep``, e.g. ChatML's newline) is never trained, since the model
stops generating at the end-of-turn token and never has to produce it.

Tools (``Conversation.tools``) are appended to the system text and function messages are written in
the family's call syntax (see tools.py). Reasoning templates (``reasoning=True``) follow LLaMA-Factory's
ReasoningTemplate: a reply without a thought gets an empty one (``<think>\\n\\n</think>\\n\\n``), trained
when thinking is enabled and part of the prompt otherwise; ``enable_thinking=False`` drops thoughts.

``efficient_eos`` and ``replace_eos`` are LLaMA-Factory's flags, recorded as it sets them. They describe what
happens around the template, not its text: under ``efficient_eos`` the encoders (data/encode.py) append a
trained EOS after the last reply and label the first token after every earlier reply as EOS, as LLaMA-Factory's
data processors do; under ``replace_eos`` the tokenizer's EOS becomes ``stop_words[0]`` (special_tokens.py; no
such template writes ``{{eos_token}}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..config.errors import ConfigError
from ..types import Conversation, Message, Segment
from .tools import ALL_FORMATS, format_function, format_tools

_PLACEHOLDER = Message("assistant", "")
_SPECIAL_MARKER = re.compile(r"<\|[^|<>\s]+\|>|<｜[^｜<>\s]+｜>|<(?:start|end)_of_turn>|\[/?INST\]|<</?SYS>>")
_TEXT_MARKERS = {"[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"}  # plain text in Llama 2 / Mistral vocabularies
_TRAINED = ("assistant", "function")
_CONFIGURED = object()  # `enable_thinking` not given: use the template's own setting


@dataclass(frozen=True)
class Template:
    name: str
    user: str
    assistant: str
    assistant_sep: str = ""
    system: str = "{{content}}"
    observation: str | None = None
    function: str | None = None
    prefix: str = ""
    default_system: str = ""
    stop_words: tuple[str, ...] = ()
    system_in_first_user: bool = False  # llama2/mistral/gemma: the system text goes inside the first user slot
    description: str = ""
    tool_format: str = "default"  # how tools and function calls are written (tools.py)
    reasoning: bool = False  # LLaMA-Factory's ReasoningTemplate (qwen3, deepseekr1)
    thought_words: tuple[str, str] = ("<think>\n", "\n</think>\n\n")
    enable_thinking: bool | None = True  # reasoning only: None keeps thoughts but never trains an empty one
    preserve_thinking: bool = False  # reasoning only: keep history thoughts in prompts and under mask_history
    special_tokens: tuple[str, ...] | None = None  # tokens check_fits requires; None: found in the slots
    function_sep: str | None = None  # untrained text after a function call; None: assistant_sep
    tool_call_words: tuple[str, str] = ("<tool_call>", "</tool_call>")  # a call block inside a function message
    tools_slot: str | None = None  # phi4_mini: the tools JSON goes here as given, instead of tool_format's text
    strip_tool_newlines: bool = False  # moss_vl: tool text opening a system block without a system message
    empty_thought_text: str | None = None  # reasoning: the empty thought, when not the two thought words
    efficient_eos: bool = False  # LLaMA-Factory: no EOS in the slots; the encoders train one (above)
    replace_eos: bool = False  # LLaMA-Factory: the tokenizer's EOS is replaced by stop_words[0]
    mm_plugin: str = ""  # LLaMA-Factory's multimodal plugin; media placeholders are not expanded here

    def configure(self, **options) -> Template:
        """A copy with run options applied, e.g. ``configure(enable_thinking=False, tool_format="qwen")``;
        None leaves an option as it is, except ``enable_thinking`` where None is a setting of its own."""
        fmt = options.get("tool_format")
        if fmt not in (None, *ALL_FORMATS):
            raise ConfigError(f"unknown tool_format `{fmt}`; known: {', '.join(ALL_FORMATS)}")
        changes = {k: v for k, v in options.items() if v is not None or k == "enable_thinking"}
        if fmt is not None:  # a chosen format also writes the tools list (phi4_mini's raw slot no longer)
            changes["tools_slot"] = None
        return replace(self, **changes)

    # -- thoughts ---------------------------------------------------------------------------------------
    @property
    def empty_thought(self) -> str:
        return self.empty_thought_text if self.empty_thought_text is not None else "".join(self.thought_words)

    def has_thought(self, content: str) -> bool:
        return self.thought_words[0].strip() in content or self.thought_words[1].strip() in content

    def remove_thought(self, content: str) -> str:
        open_, close = map(re.escape, self.thought_words)
        return re.sub(f"{open_}(.*?){close}", "", content, flags=re.DOTALL).lstrip("\n")

    # -- rendering --------------------------------------------------------------------------------------
    def turns(self, conv: Conversation, bos: str = "", eos: str = "", default_system: str | None = None, *,
              enable_thinking=_CONFIGURED, mask_history: bool = False) -> list[tuple[str, str]]:
        """Render to (prompt_text, response_text) pairs, one per trained assistant/function message.

        Untrained text between replies (separators, user turns, tool results) belongs to the prompt of
        the following pair. Trailing untrained text after the last reply is dropped. ``mask_history``
        (reasoning templates) drops history thoughts as LLaMA-Factory does when only the last turn trains.
        """
        think = self.enable_thinking if enable_thinking is _CONFIGURED else enable_thinking
        messages = list(conv.messages)
        trained = [i for i, m in enumerate(messages) if m.role in _TRAINED]
        empty_at: set[int] = set()
        if self.reasoning:
            strip = set(trained) if think is False else set()
            if mask_history and not self.preserve_thinking:
                strip |= set(trained[:-1])
                trained = trained[-1:]
            messages = [Message(m.role, self.remove_thought(m.content)) if i in strip else m
                        for i, m in enumerate(messages)]
            empty_at = {i for i in trained if not self.has_thought(messages[i].content)}
        return self._pairs(conv, messages, bos, eos, default_system, empty_at, think)

    def generation_prompt(self, conv: Conversation, bos: str = "", eos: str = "",
                          default_system: str | None = None, *, enable_thinking=_CONFIGURED) -> str:
        """Text to feed the model to get the next assistant reply (conv ends with a user turn)."""
        think = self.enable_thinking if enable_thinking is _CONFIGURED else enable_thinking
        messages = list(conv.messages)
        if self.reasoning and not self.preserve_thinking:  # history thoughts are not shown to the model
            messages = [Message(m.role, self.remove_thought(m.content)) if m.role in _TRAINED else m
                        for m in messages]
        messages.append(_PLACEHOLDER)
        empty_at = {len(messages) - 1} if self.reasoning else set()
        pairs = self._pairs(conv, messages, bos, eos, default_system, empty_at, think)
        return "".join(p + r for p, r in pairs[:-1]) + pairs[-1][0]

    def _pairs(self, conv: Conversation, messages: list[Message], bos: str, eos: str, default_system: str | None,
               empty_at: set[int], think) -> list[tuple[str, str]]:
        fill = lambda slot, content="": (slot.replace("{{content}}", content)  # noqa: E731
                                         .replace("{{bos_token}}", bos).replace("{{eos_token}}", eos))
        system = conv.system or (default_system if default_system is not None else self.default_system)
        system_text = ""
        if system or conv.tools:  # as LLaMA-Factory: a tools field (even "[]") opens a system block
            tool_text = self._tool_text(conv.tools, bool(system)) if conv.tools else ""
            system_text = fill(self.system, system + tool_text)
        pending = fill(self.prefix) + ("" if self.system_in_first_user else system_text)
        pairs: list[tuple[str, str]] = []
        first_user = True
        for i, msg in enumerate(messages):
            if msg.role == "user":
                content = (system_text if first_user and self.system_in_first_user else "") + msg.content
                first_user = False
                pending += fill(self.user, content)
            elif msg.role == "observation":
                pending += fill(self.observation or self.user, msg.content)
            elif msg.role == "function":
                content = format_function(self.tool_format, msg.content, self.thought_words, self.tool_call_words)
                pairs.append((pending, fill(self.function or self.assistant, content)))
                pending = fill(self.assistant_sep if self.function_sep is None else self.function_sep)
            else:  # assistant: trained
                pairs.append((pending, fill(self.assistant, msg.content)))
                pending = fill(self.assistant_sep)
            if i in empty_at:  # reasoning: an empty thought, trained only when thinking is enabled
                prompt, reply = pairs[-1]
                pairs[-1] = (prompt, self.empty_thought + reply) if think else (prompt + self.empty_thought, reply)
        return pairs

    def _tool_text(self, tools: str, has_system: bool) -> str:
        if self.tools_slot is not None:
            return self.tools_slot.replace("{{content}}", tools)
        text = format_tools(self.tool_format, tools)
        return text.lstrip("\n") if self.strip_tool_newlines and not has_system else text

    def render(self, conv: Conversation, bos: str = "", eos: str = "") -> list[Segment]:
        segments: list[Segment] = []
        for prompt, response in self.turns(conv, bos, eos):
            segments += [Segment(prompt, False), Segment(response, True)]
        return segments

    # -- checks -----------------------------------------------------------------------------------------
    def markers(self) -> set[str]:
        """Special-token-looking strings in the slots; each must be one token of the tokenizer."""
        if self.special_tokens is not None:
            return set(self.special_tokens)
        text = "".join([self.user, self.assistant, self.assistant_sep, self.system, self.observation or "",
                        self.function or "", self.prefix])
        return set(_SPECIAL_MARKER.findall(text)) - _TEXT_MARKERS

    def check_fits(self, tokenizer) -> None:
        """Fail clearly when the tokenizer lacks a special token this template writes."""
        for marker in sorted(self.markers()):
            ids = tokenizer.encode(marker, add_special_tokens=False)
            if len(ids) != 1:
                raise ConfigError(f"template `{self.name}` writes {marker!r}, but the tokenizer splits it into "
                                  f"{len(ids)} tokens: this template does not fit this model. Pick the template "
                                  "of the model's family (or leave `template` unset to use the tokenizer's own "
                                  "chat_template) or add the token.")
        slots = (self.prefix, self.user, self.assistant, self.system, self.function or "", self.observation or "")
        for placeholder, token in (("{{bos_token}}", tokenizer.bos_token), ("{{eos_token}}", tokenizer.eos_token)):
            if not token and any(placeholder in slot for slot in slots):
                kind = placeholder.strip("{}").split("_")[0].upper()
                raise ConfigError(f"template `{self.name}` needs a {kind} token but the tokenizer has none")
