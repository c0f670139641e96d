"""Reward functions of stage grpo (`reward_funcs`), and the reward model of the ppo section as one more.

A reward function is named `module:function` (an importable module, or a path to a .py file) or is a
built-in. It is called once per batch with keyword arguments, one list entry per completion:

    f(prompts: list[str], completions: list[str], completion_ids: list[list[int]], solution: list[str],
      step: int, **kwargs) -> list[float | None]

``prompts`` are the rendered prompts (template included), ``completions`` the decoded completions (special
tokens dropped), ``solution`` the dataset's reply to that prompt ("" when the row has none). ``None`` means
"not scored by this function" (left out of that function's statistics; a completion no function scored gets
advantage 0). Accept ``**kwargs``: more arguments may be added. Built-ins:

- ``accuracy``: 1.0 when the completion's answer equals the solution's, else 0.0. The answer is the text in
  ``<answer>...</answer>``, else the last ``\\boxed{...}``, else the text after ``####``, else the last number,
  else the whole text; numbers compare as numbers, other answers as whitespace-normalised text.
- ``format``: 1.0 when the completion is ``<think>...</think>`` then ``<answer>...</answer>`` (whitespace
  around them allowed), else 0.0.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ...config.errors import ConfigError

NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
FORMAT = re.compile(r"^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$", re.DOTALL)


class RewardError(ConfigError):
    """A reward function failed or answered in the wrong shape (names the function and the prompt)."""


def _boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 1, start + len("\\boxed{")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def extract_answer(text: str) -> str:
    """The answer part of a completion or solution (see the module doc)."""
    tagged = re.findall(r"<answer>(.*?)</answer>", text, re.DOTALL)
    if tagged:
        return tagged[-1].strip()
    boxed = _boxed(text)
    if boxed is not None:
        return boxed.strip()
    if "####" in text:
        return text.rsplit("####", 1)[1].strip()
    numbers = NUMBER.findall(text)
    if numbers:
        return numbers[-1]
    return text.strip()


def _as_number(text: str) -> float | None:
    text = text.replace(",", "").replace("$", "").strip().rstrip(".")
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        return None


def answers_match(completion: str, solution: str) -> bool:
    got, want = extract_answer(completion), extract_answer(solution)
    a, b = _as_number(got), _as_number(want)
    if a is not None and b is not None:
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return " ".join(got.split()) == " ".join(want.split())


def accuracy_reward(completions: list[str], solution: list[str], **kwargs) -> list[float | None]:
    return [None if not sol else float(answers_match(c, sol)) for c, sol in zip(completions, solution)]


def format_reward(completions: list[str], **kwargs) -> list[float]:
    return [float(bool(FORMAT.match(c))) for c in completions]


BUILTINS: dict[str, Callable] = {"accuracy": accuracy_reward, "format": format_reward}


def load_function(name: str) -> Callable:
    """A built-in by name, or `module:function` (an importable module or a .py file)."""
    if name in BUILTINS:
        return BUILTINS[name]
    module_name, _, attr = name.rpartition(":")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise ConfigError(f"reward function {name}: file {module_name} not found")
            spec = importlib.util.spec_from_file_location(f"tunesmith_reward_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))  # a module next to the config, as `python -m` would see it
            module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"reward function {name}: cannot import {module_name} ({err}); put it on PYTHONPATH or "
                          "name a .py file (path/to/rewards.py:function)") from None
    func = getattr(module, attr, None)
    if not callable(func):
        raise ConfigError(f"reward function {name}: {module_name} has no function `{attr}`")
    return func


@dataclass
class RewardInputs:
    prompts: list[str]
    completions: list[str]
    completion_ids: list[list[int]]
    solution: list[str]
    step: int


def call_reward(name: str, func: Callable, inputs: RewardInputs) -> list[float]:
    """One function over the batch -> floats (NaN for None). A failure names the function and the prompt."""
    kwargs = dict(prompts=inputs.prompts, completions=inputs.completions, completion_ids=inputs.completion_ids,
                  solution=inputs.solution, step=inputs.step)
    try:
        values = func(**kwargs)
    except Exception as err:  # noqa: BLE001 - any user error is reported with the prompt it failed on
        raise RewardError(f"reward function {name} failed: {type(err).__name__}: {err} (on prompt "
                          f"{_failing_prompt(func, kwargs)!r})") from err
    values = list(values) if values is not None else None
    if values is None or len(values) != len(inputs.completions):
        raise RewardError(f"reward function {name} must return one value per completion "
                          f"({len(inputs.completions)}), got {values!r:.200}")
    out = []
    for i, value in enumerate(values):
        if value is None:
            out.append(float("nan"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out.append(float(value))
        else:
            raise RewardError(f"reward function {name} returned {value!r} for the completion of prompt "
                              f"{inputs.prompts[i]!r:.300}; a reward is a finite number or None")
    return out


def _failing_prompt(func: Callable, kwargs: dict) -> str:
    """The first prompt whose completion alone makes ``func`` fail (or the first prompt)."""
    for i in range(len(kwargs["prompts"])):
        one = {k: (v[i:i + 1] if isinstance(v, list) else v) for k, v in kwargs.items()}
        try:
            func(**one)
        except Exception:  # noqa: BLE001
            return kwargs["prompts"][i][:300]
    return kwargs["prompts"][0][:300] if kwargs["prompts"] else ""


class RewardSet:
    """Every reward of a run, in order: ``reward_funcs``, then the reward model when set (any callable
    ``(policy, RolloutBatch) -> (N,) scores``, the ppo reward sources)."""

    def __init__(self, funcs: tuple[str, ...], model_reward=None, model_name: str = "reward_model") -> None:
        self.funcs = [(name, load_function(name)) for name in funcs]
        self.model_reward = model_reward
        self.names = [name.rsplit(":", 1)[-1] for name in funcs] + ([model_name] if model_reward else [])

    def __call__(self, inputs: RewardInputs, policy, rows) -> torch.Tensor:
        """(N, F) rewards, NaN where a function returned None."""
        columns = [call_reward(name, func, inputs) for name, func in self.funcs]
        out = torch.tensor(columns, dtype=torch.float32).T if columns else torch.zeros(len(inputs.completions), 0)
        if self.model_reward is not None:
            out = torch.cat((out, self.model_reward(policy, rows).float().reshape(-1, 1).cpu()), dim=1)
        return out
