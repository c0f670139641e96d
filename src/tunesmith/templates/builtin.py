"""Named templates: every name of LLaMA-Factory's registry (``data/template.py``), so a config's
`template: qwen3_nothink` means what it means there (slot texts, default systems, stop words, tool formats,
thinking). The families live in families/; this module registers them and is where callers look names up.

Deliberate differences from LLaMA-Factory's rendering:
- text after a reply's end-of-turn token (ChatML's "\\n", Gemma's after <end_of_turn>) is not trained;
  text after a reply that has no end-of-turn token (falcon's "\\n", fewshot's "\\n\\n") is;
- ``efficient_eos`` templates (glm4, gemma2, gpt_oss, ...) write no EOS, as LLaMA-Factory's templates do;
  the trained EOS that its data processors add is left to the data layer (the flag says when);
- vision/audio templates (``mm_plugin`` set) render their text part: a message's media placeholders
  (``<image>`` ...) stay as written, unexpanded.
"""

from __future__ import annotations

from .families import chatml, gemma_glm, llama, other, plain, qwen
from .registry import TEMPLATES, get_template, register

for _family in (plain, chatml, qwen, llama, gemma_glm, other):
    for _template in _family.ALL:
        register(_template)

__all__ = ["TEMPLATES", "get_template", "register"]
