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


def plot_special(output_dir: str | Path) -> list[Path]:
    """training_special_tokens.png: special-token vs ordinary-token loss (and special accuracy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in read_log(output_dir) if "special_loss" in r or "ordinary_loss" in r]
    if not records:
        return []
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for key, color in (("special_loss", "#d62728"), ("ordinary_loss", "#1f77b4")):
        points = [(r["current_steps"], r[key]) for r in records if key in r]
        if points:
            ax.plot(*zip(*points), color=color, label=key.replace("_", " "))
    acc = [(r["current_steps"], r["special_acc"]) for r in records if "special_acc" in r]
    if acc:
        twin = ax.twinx()
        twin.plot(*zip(*acc), color="#2ca02c", linestyle="--", label="special accuracy")
        twin.set_ylim(0, 1)
        twin.set_ylabel("special-token accuracy")
        twin.legend(loc="center right")
    ax.set_title(f"special tokens of {Path(output_dir).name}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(loc="upper right")
    path = Path(output_dir) / "training_special_tokens.png"
    fig.savefig(path, format="png", bbox_inches="tight")
    plt.close(fig)
    return [path]


def plot_rewards(output_dir: str | Path) -> list[Path]:
    """training_rewards.png (preference stages): rewards of chosen and rejected replies, their margin, and
    the pairwise accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in read_log(output_dir) if "rewards/chosen" in r and "loss" in r]
    if not records:
        return []
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for key, color in (("rewards/chosen", "#2ca02c"), ("rewards/rejected", "#d62728"), ("rewards/margins", "#1f77b4")):
        points = [(r["current_steps"], r[key]) for r in records if key in r]
        if points:
            ax.plot(*zip(*points), color=color, label=key.split("/")[1])
    acc = [(r["current_steps"], r["rewards/accuracies"]) for r in records if "rewards/accuracies" in r]
    if acc:
        twin = ax.twinx()
        twin.plot(*zip(*acc), color="#7f7f7f", linestyle="--", label="accuracy")
        twin.set_ylim(0, 1.05)
        twin.set_ylabel("accuracy (chosen > rejected)")
        twin.legend(loc="lower right")
    ax.set_title(f"rewards of {Path(output_dir).name}")
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    ax.legend(loc="upper left")
    path = Path(output_dir) / "training_rewards.png"
    fig.savefig(path, format="png", bbox_inches="tight")
    plt.close(fig)
    return [path]
