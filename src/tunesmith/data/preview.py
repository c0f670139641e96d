"""Human-readable views of encoded data: trained spans highlighted, and per-dataset statistics."""

from __future__ import annotations

from ..types import IGNORE_INDEX, EncodedExample, FeedbackExample, PairExample
from .load import TrainingData

ANSI_TRAINED, ANSI_RESET = "\033[1;32m", "\033[0m"
OPEN, CLOSE = "⟦", "⟧"


def render_spans(tokenizer, example: EncodedExample, color: bool = False) -> str:
    """Decode ``input_ids``, wrapping every run of trained tokens (label != -100) in markers or colour.
    Preference examples show their other sequences too (the rejected reply; KTO's tag and KL pairing)."""
    text = _spans(tokenizer, example.input_ids, example.labels, color)
    if isinstance(example, PairExample):
        text = ("[chosen]\n" + text + "\n[rejected]\n"
                + _spans(tokenizer, example.rejected_input_ids, example.rejected_labels, color))
    if isinstance(example, FeedbackExample):
        text = (f"[{'desirable' if example.kto_tag else 'undesirable'}]\n" + text
                + "\n[KL pairing: this prompt with another example's reply]\n"
                + _spans(tokenizer, example.kl_input_ids, example.kl_labels, color))
    return text


def _spans(tokenizer, input_ids: list[int], labels: list[int], color: bool) -> str:
    """Trained runs marked; a position trained on another token than its own (efficient_eos templates put the
    EOS label on the token after a reply) shows the token, then its label as ``⟨→label⟩``."""
    start, end = (ANSI_TRAINED, ANSI_RESET) if color else (OPEN, CLOSE)
    pieces, run, trained = [], [], None
    for token, label in zip(input_ids, labels):
        is_trained = label != IGNORE_INDEX
        if trained is not None and is_trained != trained:
            pieces.append((trained, tokenizer.decode(run)))
            run = []
        if is_trained and label != token:
            if run:
                pieces.append((trained, tokenizer.decode(run)))
                run = []
            pieces.append((True, f"{tokenizer.decode([token])}⟨→{tokenizer.decode([label])}⟩"))
            trained = True
            continue
        run.append(token)
        trained = is_trained
    if run:
        pieces.append((trained, tokenizer.decode(run)))
    return "".join(f"{start}{text}{end}" if is_trained else text for is_trained, text in pieces)


def stats_table(data: TrainingData) -> str:
    header = ("dataset", "examples", "kept", "dropped", "truncated", "tokens", "trained", "trained %")
    rows = []
    for part in data.parts:
        s = part.stats
        rows.append((part.name, s.examples, s.kept, s.dropped_empty, s.truncated, s.tokens, s.trained_tokens,
                     f"{100.0 * s.trained_tokens / max(s.tokens, 1):.1f}"))
    if len(data.parts) > 1:
        t = data.stats
        rows.append(("total", t.examples, t.kept, t.dropped_empty, t.truncated, t.tokens, t.trained_tokens,
                     f"{100.0 * t.trained_tokens / max(t.tokens, 1):.1f}"))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).rjust(w) if i else str(v).ljust(w)  # noqa: E731
                               for i, (v, w) in enumerate(zip(r, widths)))
    lengths = [len(e.input_ids) for e in data.train]
    footer = (f"training rows: {len(data.train)} (mean {sum(lengths) / max(len(lengths), 1):.0f} tokens, "
              f"max {max(lengths, default=0)})"
              + (f"; evaluation rows: {len(data.eval)}" if data.eval else ""))
    return "\n".join([line(header), *map(line, rows), footer])
