"""Stage ppo: proximal policy optimisation from a reward model. The data are prompts: sft-style rows
whose replies are ignored (a row may also end with its user turn, or leave the alpaca output out). Each
prompt is encoded exactly as the prompt of an sft example (system, history, the last user turn and the
assistant header); the policy writes the replies during training.

The training loop lives in train/ppo/ (rollouts, rewards, PPO updates); the math in stages/rl/.
"""

from __future__ import annotations

from ..data.encode import EncodeStats
from ..data.encode_preference import render_prompt_and_reply
from ..data.formats import alpaca, sharegpt
from ..types import IGNORE_INDEX, Conversation, EncodedExample, Message
from .base import register


def to_prompt(attr, row: dict, index: int) -> Conversation:
    """The row as a conversation that ends with an (ignored) assistant reply."""
    if attr.formatting == "alpaca":
        column = attr.column("response")
        if column is not None and row.get(column) is None:
            row = {**row, column: ""}
        return alpaca.to_conversation(attr, row, index)
    conv = sharegpt.to_conversation(attr, row, index, allow_open_end=True)
    if len(conv.messages) % 2:
        conv = Conversation(conv.messages + (Message("assistant", ""),), system=conv.system, tools=conv.tools)
    return conv


class PPOStage:
    name = "ppo"
    needs_template = True
    model_head = "lm"

    def encode(self, attr, rows, tokenizer, template, data):
        convs = [to_prompt(attr, row, i) for i, row in enumerate(rows)]
        rendered = render_prompt_and_reply(convs, tokenizer, template, data.default_system)
        stats = EncodeStats(examples=len(rows))
        out: list[EncodedExample] = []
        for row, (prompt, _) in enumerate(rendered):
            if len(prompt) > data.cutoff_len:  # a cut prompt would lose its assistant header
                stats.dropped_empty += 1
                stats.dropped_rows.append(row)
                continue
            out.append(EncodedExample(prompt, [IGNORE_INDEX] * len(prompt)))
            stats.kept += 1
            stats.tokens += len(prompt)
        return out, stats


register(PPOStage())
