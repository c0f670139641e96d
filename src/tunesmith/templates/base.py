"""Chat templates: how a Conversation becomes text segments, each marked trained or not.

A template is declarative: slot strings with ``{{content}}``, ``{{bos_token}}`` and ``{{eos_token}}``
placeholders. ``assistant`` is the trained slot (the reply and its end-of-turn token); text after
the end-of-turn token (``assistant_sep``, e.g. ChatML's newline) is never trained, since the model
stops generating at the end-of-turn token and never has to produce it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..config.errors import ConfigError
from ..types import Conversation, Message, Segment

_PLACEHOLDER = Message("assistant", "")
_SPECIAL_MARKER = re.compile(r"<\|[^|<>\s]+\|>|\[/?INST\]|<</?SYS>>")


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
    system_in_first_user: bool = False  # llama2/mistral: the system text goes inside the first user slot
    description: str = ""

    def turns(self, conv: Conversation, bos: str = "", eos: str = "", default_system: str | None = None
              ) -> list[tuple[str, str]]:
        """Render to (prompt_text, response_text) pairs, one per trained assistant/function message.

        Untrained text between replies (separators, user turns, tool results) belongs to the prompt of
        the following pair. Trailing untrained text after the last reply is dropped.
        """
        fill = lambda slot, content="": (slot.replace("{{content}}", content)  # noqa: E731
                                         .replace("{{bos_token}}", bos).replace("{{eos_token}}", eos))
        system = conv.system or (default_system if default_system is not None else self.default_system)
        pending = fill(self.prefix)
        if system and not self.system_in_first_user:
            pending += fill(self.system, system)
        pairs: list[tuple[str, str]] = []
        first_user = True
        for msg in conv.messages:
            if msg.role == "user":
                content = msg.content
                if first_user and system and self.system_in_first_user:
                    content = fill(self.system, system) + content
                first_user = False
                pending += fill(self.user, content)
            elif msg.role == "observation":
                pending += fill(self.observation or self.user, msg.content)
            else:  # assistant / function: trained
                slot = self.function if (msg.role == "function" and self.function) else self.assistant
                pairs.append((pending, fill(slot, msg.content)))
                pending = fill(self.assistant_sep)
        return pairs

    def render(self, conv: Conversation, bos: str = "", eos: str = "") -> list[Segment]:
        segments: list[Segment] = []
        for prompt, response in self.turns(conv, bos, eos):
            segments += [Segment(prompt, False), Segment(response, True)]
        return segments

    def generation_prompt(self, conv: Conversation, bos: str = "", eos: str = "") -> str:
        """Text to feed the model to get the next assistant reply (conv ends with a user turn)."""
        pairs = self.turns(Conversation(conv.messages + (_PLACEHOLDER,), conv.system, conv.tools), bos, eos)
        prompt_text = "".join(p + r for p, r in pairs[:-1]) + pairs[-1][0]
        return prompt_text

    def markers(self) -> set[str]:
        """Special-token-looking strings in the slots; each must be one token of the tokenizer."""
        text = "".join([self.user, self.assistant, self.assistant_sep, self.system, self.observation or "",
                        self.function or "", self.prefix])
        return set(_SPECIAL_MARKER.findall(text)) - {"[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"}

    def check_fits(self, tokenizer) -> None:
        """Fail clearly when the tokenizer lacks a special token this template writes."""
        for marker in sorted(self.markers()):
            ids = tokenizer.encode(marker, add_special_tokens=False)
            if len(ids) != 1:
                raise ConfigError(f"template `{self.name}` writes {marker!r}, but the tokenizer splits it into "
                                  f"{len(ids)} tokens: this template does not fit this model. Pick the template "
                                  "of the model's family (see `tunesmith templates`) or add the token.")
        for slot in (self.prefix, self.user, self.assistant, self.system):
            if "{{bos_token}}" in slot and not tokenizer.bos_token:
                raise ConfigError(f"template `{self.name}` needs a BOS token but the tokenizer has none")
            if "{{eos_token}}" in slot and not tokenizer.eos_token:
                raise ConfigError(f"template `{self.name}` needs an EOS token but the tokenizer has none")
