"""Loss curves as PNG files (matplotlib, headless)."""

from __future__ import annotations

import math
from pathlib import Path

from .callbacks.log_file import read_log


def smooth(values: list[float], weight: float | None = None) -> list[float]:
    """Exponential moving average, debiased, with a weight that grows with the series length."""
    if not values:
        return []
    if weight is None:
        weight = 1.8 * (1 / (1 + math.exp(-0.05 * len(values))) - 0.5)
    out, last = [], values[0]
    for value in values:
        last = last * weight + (1 - weight) * value
        out.append(last)
    return out


def plot_loss(output_dir: str | Path, keys: tuple[str, ...] = ("loss", "eval_loss")) -> list[Path]:
    """Write training_<key>.png for each key present in trainer_log.jsonl; return the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(output_dir)
    written = []
    for key in keys:
        points = [(r["current_steps"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
        if not points:
            continue
        steps, values = zip(*points)
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
        ax.plot(steps, values, color="#1f77b4", alpha=0.4, label="original")
        if len(values) > 2:
            ax.plot(steps, smooth(list(values)), color="#1f77b4", label="smoothed")
        ax.set_title(f"{key} of {Path(output_dir).name}")
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.legend()
        path = Path(output_dir) / f"training_{key}.png"
        fig.savefig(path, format="png", bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def _curves(output_dir: str | Path, records: list[dict], lines: tuple[tuple[str, str, str], ...],
            twin: tuple[str, str, str, float] | None, title: str, ylabel: str, filename: str,
            legend: tuple[str, str] = ("upper right", "center right")) -> list[Path]:
    """One figure: ``lines`` (key, colour, label) against the step, plus an optional dashed ``twin``
    (key, colour, axis label, top of its 0..top axis) on a second y axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for key, color, label in lines:
        points = [(r["current_steps"], r[key]) for r in records if key in r]
        if points:
            ax.plot(*zip(*points), color=color, label=label)
    points = [(r["current_steps"], r[twin[0]]) for r in records if twin and twin[0] in r]
    if points:
        other = ax.twinx()
        other.plot(*zip(*points), color=twin[1], linestyle="--", label=twin[2].split(" (")[0])
        other.set_ylim(0, twin[3])
        other.set_ylabel(twin[2])
        other.legend(loc=legend[1])
    ax.set_title(f"{title} of {Path(output_dir).name}")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.legend(loc=legend[0])
    path = Path(output_dir) / filename
    fig.savefig(path, format="png", bbox_inches="tight")
    plt.close(fig)
    return [path]


def plot_special(output_dir: str | Path) -> list[Path]:
    """training_special_tokens.png: special-token vs ordinary-token loss (and special accuracy)."""
    records = [r for r in read_log(output_dir) if "special_loss" in r or "ordinary_loss" in r]
    if not records:
        return []
    return _curves(output_dir, records, (("special_loss", "#d62728", "special loss"),
                                         ("ordinary_loss", "#1f77b4", "ordinary loss")),
                   ("special_acc", "#2ca02c", "special-token accuracy", 1.0), "special tokens", "loss",
                   "training_special_tokens.png")


def plot_rewards(output_dir: str | Path) -> list[Path]:
    """training_rewards.png (preference stages): rewards of chosen and rejected replies, their margin, and
    the pairwise accuracy."""
    records = [r for r in read_log(output_dir) if "rewards/chosen" in r and "loss" in r]
    if not records:
        return []
    return _curves(output_dir, records, (("rewards/chosen", "#2ca02c", "chosen"),
                                         ("rewards/rejected", "#d62728", "rejected"),
                                         ("rewards/margins", "#1f77b4", "margins")),
                   ("rewards/accuracies", "#7f7f7f", "accuracy (chosen > rejected)", 1.05), "rewards", "reward",
                   "training_rewards.png", legend=("upper left", "lower right"))
