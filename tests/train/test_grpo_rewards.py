"""GRPO reward functions: the built-ins, loading `module:function` / `file.py:function`, and clear errors."""

import math

import pytest
import torch

from tunesmith.config.errors import ConfigError
from tunesmith.train.rl.reward_funcs import (RewardError, RewardInputs, RewardSet, accuracy_reward, answers_match,
                                             extract_answer, format_reward, load_function)


@pytest.mark.parametrize("text, answer", [
    ("<think>2 and 2</think><answer> 4 </answer>", "4"),
    ("so the result is \\boxed{\\frac{1}{2}} done", "\\frac{1}{2}"),
    ("Natalia sold 48 clips... #### 72", "72"),
    ("5+2=7", "7"),
    ("no digits here ", "no digits here"),
])
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


def test_accuracy_compares_numbers_as_numbers_and_skips_rows_without_solution():
    assert answers_match("the answer is 1,000.0", "#### 1000")
    assert answers_match("<answer>3/4</answer>", "0.75")
    assert not answers_match("5+2=8", "5+2=7")
    assert accuracy_reward(["5+2=7", "5+2=8", "x"], ["5+2=7", "5+2=7", ""]) == [1.0, 0.0, None]


def test_format_reward():
    good = "<think>\nadd them\n</think>\n<answer>7</answer>\n"
    assert format_reward([good, "<answer>7</answer>", "<think>a</think> 7"]) == [1.0, 0.0, 0.0]


def test_load_function_from_a_file_and_errors(tmp_path):
    path = tmp_path / "rules.py"
    path.write_text("def long(completions, **kw):\n    return [float(len(c)) for c in completions]\n")
    assert load_function(f"{path}:long")(completions=["ab"]) == [2.0]
    with pytest.raises(ConfigError, match="has no function `short`"):
        load_function(f"{path}:short")
    with pytest.raises(ConfigError, match="cannot import no_such_module_here"):
        load_function("no_such_module_here:f")
    with pytest.raises(ConfigError, match="not found"):
        load_function(f"{tmp_path / 'missing.py'}:f")


def inputs(prompts=("p1", "p2")):
    return RewardInputs(prompts=list(prompts), completions=["7", "8"], completion_ids=[[1], [2]],
                        solution=["7", "7"], step=0)


def test_reward_set_stacks_functions_and_marks_none_as_nan(tmp_path):
    path = tmp_path / "r.py"
    path.write_text("def half(completions, **kw):\n    return [0.5, None]\n")
    rewards = RewardSet(("accuracy", f"{path}:half"))
    assert rewards.names == ["accuracy", "half"]
    out = rewards(inputs(), None, None)
    assert out[:, 0].tolist() == [1.0, 0.0] and out[0, 1] == 0.5 and math.isnan(out[1, 1])

    class Model:
        def __call__(self, policy, rows):
            return torch.tensor([2.0, 3.0])

    both = RewardSet(("accuracy",), Model())
    assert both.names == ["accuracy", "reward_model"] and both(inputs(), None, None)[:, 1].tolist() == [2.0, 3.0]


def test_failing_or_misshapen_rewards_name_the_function_and_the_prompt(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("def boom(prompts, **kw):\n    return [1 / ('p2' not in p) for p in prompts]\n"
                    "def short(completions, **kw):\n    return [1.0]\n"
                    "def text(completions, **kw):\n    return ['1', 2.0]\n")
    with pytest.raises(RewardError, match=r"bad.py:boom failed: ZeroDivisionError.*on prompt 'p2'"):
        RewardSet((f"{path}:boom",))(inputs(), None, None)
    with pytest.raises(RewardError, match=r"must return one value per completion \(2\)"):
        RewardSet((f"{path}:short",))(inputs(), None, None)
    with pytest.raises(RewardError, match=r"returned '1' for the completion of prompt 'p1'"):
        RewardSet((f"{path}:text",))(inputs(), None, None)
