"""Every named template renders a fixed set of conversations exactly as its golden file says.

Golden files (tests/golden/templates/<template>__<scenario>.txt) show the training text with trained spans
inside ⟦ ⟧, then the generation prompt for the conversation without its last reply. BOS/EOS are written
as <s> and </s>. Regenerate with `pytest tests/templates --update-golden` and review the diff by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.templates import tools as tool_formats
from tunesmith.templates.builtin import TEMPLATES
from tunesmith.types import Conversation, Message

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "templates"
BOS, EOS = "<s>", "</s>"
TOOLS = json.dumps([{
    "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "required": ["city"], "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}},
}])


def thought_conv(template) -> Conversation:
    """A reply with a thought in the template's own thought words, then a reply without one."""
    open_, close = template.thought_words
    return Conversation((Message("user", "What is 2+2?"), Message("assistant", f"{open_}2 plus 2 is 4.{close}4"),
                         Message("user", "And 3+3?"), Message("assistant", "6")))


SCENARIOS = {  # name -> (conversation, options for turns / generation_prompt)
    "single": (Conversation((Message("user", "What is 1+1?"), Message("assistant", "2"))), {}),
    "multi": (Conversation((Message("user", "Hi!"), Message("assistant", "Hello! How can I help?"),
                            Message("user", "What is 2+2?"), Message("assistant", "4"))), {}),
    "system": (Conversation((Message("user", "Hi!"), Message("assistant", "Hello!"), Message("user", "Name?"),
                             Message("assistant", "Tuney.")), system="You are Tuney. Be brief."), {}),
    "tools": (Conversation((Message("user", "Weather in Paris?"),
                            Message("function", '{"name": "get_weather", "arguments": {"city": "Paris"}}'),
                            Message("observation", '{"temperature": 18, "unit": "celsius"}'),
                            Message("assistant", "It is 18 °C in Paris.")), tools=TOOLS), {}),
}
REASONING_SCENARIOS = {  # name -> options; the conversation is thought_conv(template)
    "think": {},
    "nothink": {"enable_thinking": False},
    "think_mask_history": {"mask_history": True},
}


def cases():
    for name, template in sorted(TEMPLATES.items()):
        scenarios = {**SCENARIOS, **(REASONING_SCENARIOS if template.reasoning else {})}
        for scenario in scenarios:
            yield name, scenario


def render(name: str, scenario: str) -> str:
    template = TEMPLATES[name]
    if scenario in REASONING_SCENARIOS:
        conv, options = thought_conv(template), REASONING_SCENARIOS[scenario]
    else:
        conv, options = SCENARIOS[scenario]
    marked = "".join(p + "⟦" + r + "⟧" for p, r in template.turns(conv, BOS, EOS, **options))
    history = Conversation(conv.messages[:-1], conv.system, conv.tools)
    generation_options = {k: v for k, v in options.items() if k != "mask_history"}
    generation = template.generation_prompt(history, BOS, EOS, **generation_options)
    return (f"{marked}\n\n======== generation prompt (without the last reply) ========\n{generation}\n")


@pytest.mark.parametrize(("name", "scenario"), list(cases()))
def test_golden(name, scenario, update_golden, monkeypatch):
    monkeypatch.setattr(tool_formats, "today", lambda: "26 Jul 2024")  # llama3 writes today's date
    path = GOLDEN / f"{name}__{scenario}.txt"
    text = render(name, scenario)
    if update_golden:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing {path.name}: run `pytest tests/templates --update-golden` and review it"
    assert text == path.read_text(encoding="utf-8"), f"{path.name} differs; if intended, --update-golden and review"


def test_no_stale_golden_files():
    expected = {f"{name}__{scenario}.txt" for name, scenario in cases()}
    stale = sorted(p.name for p in GOLDEN.glob("*.txt") if p.name not in expected)
    assert not stale, f"golden files without a template/scenario: {stale}"
