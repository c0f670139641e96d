"""An Ollama `Modelfile` for an export, as LLaMA-Factory writes one: `FROM .`, the chat template in Ollama's Go
template syntax, the default system message, a stop parameter per stop token and the context length.
`ollama create NAME -f Modelfile` in the export folder then serves the model with the training format.

Named templates are converted slot by slot (`{{content}}` -> `.System` / `.Content`, `{{bos_token}}` /
`{{eos_token}}` -> the tokenizer's tokens). A tokenizer's own Jinja template (no `template` named) has no slots:
the Modelfile then leaves TEMPLATE out, and Ollama uses the chat template it reads from the tokenizer files.
"""

from __future__ import annotations

from ..templates.base import Template

HEADER = "# Ollama Modelfile written by tunesmith export: ollama create <name> -f Modelfile\n\n"


def go_slot(slot: str, tokenizer, placeholder: str | None = None) -> str:
    text = slot.replace("{{bos_token}}", tokenizer.bos_token or "").replace("{{eos_token}}", tokenizer.eos_token or "")
    if placeholder is not None:
        text = text.replace("{{content}}", "{{ " + placeholder + " }}")
    return text


def go_template(template: Template, tokenizer) -> str:
    """The conversation loop in Ollama's template language (system once, then user/assistant turns)."""
    prefix = go_slot(template.prefix, tokenizer)
    system = go_slot(template.system, tokenizer, ".System")
    user = go_slot(template.user, tokenizer, ".Content")
    assistant = go_slot(template.assistant + template.assistant_sep, tokenizer, ".Content")
    return (f"{prefix}{{{{ if .System }}}}{system}{{{{ end }}}}"
            f'{{{{ range .Messages }}}}{{{{ if eq .Role "user" }}}}{user}'
            f'{{{{ else if eq .Role "assistant" }}}}{assistant}{{{{ end }}}}{{{{ end }}}}')


def modelfile(template, tokenizer, stop_ids: list[int], default_system: str | None, num_ctx: int = 4096) -> str:
    text = HEADER + "FROM .\n\n"
    if isinstance(template, Template):
        text += f'TEMPLATE """{go_template(template, tokenizer)}"""\n\n'
    system = default_system or getattr(template, "default_system", "")
    if system:
        text += f'SYSTEM """{system}"""\n\n'
    for token in tokenizer.convert_ids_to_tokens(list(stop_ids)):
        text += f'PARAMETER stop "{token}"\n'
    return text + f"PARAMETER num_ctx {num_ctx}\n"
