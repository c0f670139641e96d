"""`template:` set -> the named template; unset -> the tokenizer's own Jinja chat_template.

A JinjaTemplate offers Template's rendering API on top of ``tokenizer.apply_chat_template``. Each
(prompt, reply) split comes from string differences between renderings of message prefixes: the prompt
of a reply is what ``add_generation_prompt=True`` renders for the messages before it, the reply is what
rendering the reply adds to that. Masks follow the named templates' convention: the reply content and the
end-of-turn marker right after it (``<|im_end|>``, ``<|eot_id|>``) train; whitespace after the marker
(ChatML's newline) does not. This needs a prefix-stable template (rendering a prefix of a conversation
gives a prefix of the full rendering); templates that rewrite history (e.g. drop old thoughts) are refused.
"""

from __future__ import annotations

import json

from ..config.errors import ConfigError
from ..types import Conversation, Message, Segment
from .base import Template
from .builtin import TEMPLATES, get_template

_PROBE = (Message("user", "Q1"), Message("assistant", "A1"), Message("user", "Q2"), Message("assistant", "A2"))


def resolve_template(name: str | None, tokenizer) -> Template | JinjaTemplate:
    if name:
        return get_template(name)
    try:
        source = tokenizer.get_chat_template()
    except ValueError:
        source = None
    if not source:
        raise ConfigError("`template` is not set and the tokenizer has no chat_template to fall back on: set "
                          f"`template` to the model family's template; known: {', '.join(sorted(TEMPLATES))}")
    template = JinjaTemplate(tokenizer, source)
    template.probe()
    return template


class JinjaTemplate:
    """The tokenizer's chat_template with Template's API: turns, generation_prompt, stop_words, check_fits."""

    efficient_eos = False  # the chat template writes its own end-of-turn text
    replace_eos = False  # the tokenizer's EOS is the model's own
    # How replies are read for tool calls: Hermes-style <tool_call> JSON blocks, what chat templates that take
    # `tools` (Qwen2.5 / Qwen3, Hermes, ...) ask the model to write; a reply in any other form stays text.
    tool_format = "qwen"
    tool_call_words = ("<tool_call>", "</tool_call>")

    def __init__(self, tokenizer, source: str, enable_thinking: bool | None = None):
        self.tokenizer = tokenizer
        self.source = source
        self.enable_thinking = enable_thinking  # passed to the Jinja (Qwen3-style templates read it)
        self.name = "tokenizer chat_template"
        self.description = "the tokenizer's own Jinja chat_template"
        self.default_system = ""
        self.stop_words: tuple[str, ...] = ()

    def __repr__(self) -> str:  # stable across runs: part of the tokenized-data cache key
        return f"JinjaTemplate(source={self.source!r}, enable_thinking={self.enable_thinking!r})"

    def configure(self, enable_thinking: bool | None = None, **_ignored) -> JinjaTemplate:
        clone = JinjaTemplate(self.tokenizer, self.source, enable_thinking)
        clone.stop_words = self.stop_words
        return clone

    def probe(self) -> None:
        """Fail early (ConfigError) when the template cannot be split into prompts and replies; learn the
        end-of-turn marker (the stop word)."""
        reply = self.turns(Conversation(_PROBE))[-1][1]
        marker = reply[len("A2"):] if reply.startswith("A2") else ""
        if marker and len(self.tokenizer.encode(marker, add_special_tokens=False)) == 1:
            self.stop_words = (marker,)
        try:
            self.turns(Conversation(_PROBE, system="S"))
        except ConfigError as err:
            if "prefix-stable" in str(err):
                raise  # a template that refuses system messages fails later, only on data that has one

    # -- rendering --------------------------------------------------------------------------------------
    def _render(self, messages: list[dict], tools: list | None, generation: bool) -> str:
        extra = {} if self.enable_thinking is None else {"enable_thinking": self.enable_thinking}
        try:
            return self.tokenizer.apply_chat_template(messages, tools=tools or None, chat_template=self.source,
                                                      tokenize=False, add_generation_prompt=generation, **extra)
        except Exception as err:  # jinja2 errors, including the template's own raise_exception
            raise ConfigError(f"the tokenizer's chat_template failed to render a conversation ({err}); "
                              "set `template` to the model family's template") from err

    @staticmethod
    def _messages(conv: Conversation, default_system: str | None) -> list[dict]:
        system = conv.system or default_system or ""
        out = [{"role": "system", "content": system}] if system else []
        for m in conv.messages:
            if m.role == "function":
                text, calls = _split_calls(m.content, JinjaTemplate.tool_call_words)
                out.append({"role": "assistant", "content": text, "tool_calls": _tool_calls(calls)})
            else:
                out.append({"role": "tool" if m.role == "observation" else m.role, "content": m.content})
        return out

    def turns(self, conv: Conversation, bos: str = "", eos: str = "", default_system: str | None = None,
              **_options) -> list[tuple[str, str]]:
        """(prompt, reply) pairs as Template.turns; bos/eos come from the tokenizer, not the arguments."""
        messages = self._messages(conv, default_system)
        tools = json.loads(conv.tools) if conv.tools else None
        skip = len(messages) - len(conv.messages)  # the system message
        pairs: list[tuple[str, str]] = []
        done, previous = 0, ""
        for k, msg in enumerate(conv.messages):
            if msg.role not in ("assistant", "function"):
                continue
            prompt = self._render(messages[:skip + k], tools, generation=True)
            full = self._render(messages[:skip + k + 1], tools, generation=False)
            if not prompt.startswith(previous) or not full.startswith(prompt):
                raise ConfigError("the tokenizer's chat_template is not prefix-stable (rendering the start of a "
                                  "conversation is not a prefix of rendering all of it), so prompts and replies "
                                  "cannot be told apart: set `template` to the model family's template; known: "
                                  + ", ".join(sorted(TEMPLATES)))
            region = full[len(prompt):]
            content = messages[skip + k]["content"]
            end = region.rfind(content) + len(content) if content and content in region else 0
            reply = region[:end] + region[end:].rstrip()  # whitespace after the end-of-turn marker: untrained
            pairs.append((prompt[done:], reply))
            done, previous = len(prompt) + len(reply), full
        return pairs

    def generation_prompt(self, conv: Conversation, bos: str = "", eos: str = "",
                          default_system: str | None = None, **_options) -> str:
        tools = json.loads(conv.tools) if conv.tools else None
        return self._render(self._messages(conv, default_system), tools, generation=True)

    def render(self, conv: Conversation, bos: str = "", eos: str = "") -> list[Segment]:
        return [seg for p, r in self.turns(conv, bos, eos) for seg in (Segment(p, False), Segment(r, True))]

    def check_fits(self, tokenizer) -> None:
        """The tokenizer's own template always fits it."""


def _split_calls(content: str, words: tuple[str, str]) -> tuple[str, str]:
    """A function message's text in front of a ``words`` block, and the calls JSON (the whole message if no block)."""
    start = content.find(words[0])
    end = content.rfind(words[1])
    if start < 0 or end < start:
        return "", content
    return content[:start].strip(), content[start + len(words[0]):end]


def _tool_calls(content: str) -> list[dict]:
    try:
        calls = json.loads(content)
        calls = calls if isinstance(calls, list) else [calls]
        return [{"type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ConfigError(f"a function message must be a JSON tool call, got {content[:200]!r}") from None
