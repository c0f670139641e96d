"""Config-only rules that once waited for torch and the model: each refuses with the key named and passes a
config that respects it, without building a model."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.config.load import build_config
from tunesmith.config.schema import STAGES, TOOL_FORMATS
from tunesmith.config.unfreeze import parse_schedule

BASE = {"model_name_or_path": "m", "stage": "sft", "do_train": True, "dataset": "a", "template": "qwen",
        "output_dir": "out"}
PPO = {"stage": "ppo", "reward_model": "rm_adapter", "finetuning_type": "lora"}
DPO_STREAMING = {"stage": "dpo", "streaming": True, "max_steps": 10}


def raw(**kw):
    return {k: (v, "test.yaml") for k, v in {**BASE, **kw}.items()}


def test_parse_schedule_reads_what_at_step():
    assert parse_schedule(("new_tokens@0", " top2@100", "model.norm@5", "all@300")) == [
        ("new_tokens", 0), ("top2", 100), ("model.norm", 5), ("all", 300)]
    assert parse_schedule(()) == []


@pytest.mark.parametrize("item", ["top2", "all@-1", "new_tokens@x", "@5", "2top@1", "mlp@1@2"])
def test_unreadable_unfreeze_schedule_is_refused_before_the_model(item):
    message = (r"^test.yaml: `unfreeze_schedule`: cannot read '" + re.escape(item) +
               r"'; write items as what@step, e.g. new_tokens@0,top2@100,all@300$")
    with pytest.raises(ConfigError, match=message):
        build_config(raw(finetuning_type="full", unfreeze_schedule=f"new_tokens@0,{item}"))


def test_readable_unfreeze_schedule_passes():
    cfg = build_config(raw(finetuning_type="full", unfreeze_schedule="new_tokens@0,top2@100,embeddings@50,all@300"))
    assert cfg.tokens.unfreeze_schedule == ("new_tokens@0", "top2@100", "embeddings@50", "all@300")


def test_tool_format_names_agree_with_the_templates():
    from tunesmith.templates.tools import FORMATS

    assert TOOL_FORMATS == FORMATS


def test_every_llamafactory_tool_format_can_be_named():
    """LLaMA-Factory's tool_utils.TOOLS keys."""
    assert set(TOOL_FORMATS) == {"default", "gemma4", "glm4", "llama3", "lfm2", "minimax1", "minimax2", "mistral",
                                 "qwen", "qwen3_5", "glm4_moe", "seed_oss", "ling"}


def test_unknown_tool_format_is_refused():
    with pytest.raises(ConfigError, match=r"^test.yaml: `tool_format` must be one of default, qwen, llama3, mistral, "
                                          r"gemma4, glm4, glm4_moe, lfm2, ling, minimax1, minimax2, qwen3_5, seed_oss; "
                                          r"got 'qwen2'; did you mean qwen, qwen3_5\?$"):
        build_config(raw(tool_format="qwen2"))


def test_a_named_tool_format_writes_the_tools():
    """A format other than the template's own reaches the rendered text (glm4's tool prompt under qwen)."""
    from tunesmith.templates.builtin import get_template
    from tunesmith.types import Conversation, Message

    cfg = build_config(raw(tool_format="glm4"))
    template = get_template(cfg.data.template).configure(tool_format=cfg.data.tool_format)
    conv = Conversation((Message("user", "hi"), Message("function", '{"name": "f", "arguments": {}}')),
                        tools='[{"name": "f", "description": "d", "parameters": {}}]')
    (prompt, call), = template.turns(conv)
    assert "## f\n" in prompt and call == "f\n{}<|im_end|>"


@pytest.mark.parametrize("value", [None, *TOOL_FORMATS])
def test_known_tool_format_passes(value):
    assert build_config(raw(tool_format=value)).data.tool_format == value


@pytest.mark.parametrize("value", [True, "true", "out/checkpoint-10"])
def test_ppo_refuses_resume_from_checkpoint(value):
    with pytest.raises(ConfigError, match=r"^test.yaml: `resume_from_checkpoint` is not available for stage ppo; "
                                          r"start a new run"):
        build_config(raw(**PPO, resume_from_checkpoint=value))


@pytest.mark.parametrize("value", [None, False, ""])
def test_ppo_without_resume_passes(value):
    assert build_config(raw(**PPO, resume_from_checkpoint=value)).stage == "ppo"


def test_resume_from_checkpoint_stays_available_to_other_stages_and_to_data_preview():
    assert build_config(raw(resume_from_checkpoint=True)).training["resume_from_checkpoint"] is True
    build_config(raw(**PPO, resume_from_checkpoint=True), purpose="data")


def test_precomputed_reference_needs_data_in_memory():
    with pytest.raises(ConfigError, match=r"^test.yaml: `precompute_ref_log_probs` needs the data in memory "
                                          r"\(not `streaming: true`\)"):
        build_config(raw(**DPO_STREAMING, precompute_ref_log_probs=True))
    assert build_config(raw(**DPO_STREAMING)).data.streaming
    assert build_config(raw(**{**DPO_STREAMING, "streaming": False}, precompute_ref_log_probs=True)
                        ).preference.precompute_ref_log_probs


def test_low_cpu_mem_usage_is_accepted_either_way():
    """transformers 5 always loads lazily; the key is kept for LLaMA-Factory configs (help says so)."""
    assert build_config(raw(low_cpu_mem_usage=False)).model.low_cpu_mem_usage is False
    assert build_config(raw()).model.low_cpu_mem_usage is True


def test_unknown_stage_is_refused_by_its_choices():
    with pytest.raises(ConfigError, match=r"^test.yaml: `stage` must be one of pt, sft, rm, ppo, dpo, kto, grpo; "
                                          r"got 'bco'"):
        build_config(raw(stage="bco"))


def test_every_configurable_stage_is_implemented():
    """`stage`'s choices are the whole check on a stage name, so each must have its implementation."""
    import importlib

    try:
        stages = importlib.import_module("tunesmith.stages.registry")
    except ModuleNotFoundError:  # the registry used to live in stages/base.py
        stages = importlib.import_module("tunesmith.stages.base")
    assert [stages.get_stage(name).name for name in STAGES] == list(STAGES)


CHECK = """
import sys
from tunesmith.config.errors import ConfigError
from tunesmith.config.load import build_config
base = {"model_name_or_path": "m", "dataset": "a", "template": "qwen", "output_dir": "o", "do_train": True}
good = [dict(finetuning_type="full", unfreeze_schedule="new_tokens@0,top2@100"), dict(tool_format="llama3"),
        dict(stage="ppo", reward_model="r"), dict(stage="dpo", precompute_ref_log_probs=True)]
bad = [dict(finetuning_type="full", unfreeze_schedule="top2"), dict(tool_format="glm9"),
       dict(stage="ppo", reward_model="r", resume_from_checkpoint=True),
       dict(stage="dpo", precompute_ref_log_probs=True, streaming=True, max_steps=5)]
for extra in good:
    build_config({k: (v, "t") for k, v in {**base, **extra}.items()})
for extra in bad:
    try:
        build_config({k: (v, "t") for k, v in {**base, **extra}.items()})
    except ConfigError:
        pass
    else:
        raise SystemExit(f"accepted {extra}")
print(sorted(m for m in ("torch", "transformers") if m in sys.modules))
"""


def test_new_rules_run_without_torch():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr + out.stdout
    assert out.stdout.strip() == "[]"
