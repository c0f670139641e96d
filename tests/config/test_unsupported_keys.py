"""A LLaMA-Factory config with keys tunesmith cannot use fails once, listing every such key with what it is and what
to use instead; LLaMA-Factory's v1 layout is recognised and translated key by key into the v0 flat keys."""

from __future__ import annotations

import re

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.config.load import build_config, load_config
from tunesmith.config.unsupported import UNSUPPORTED

BASE = {"model_name_or_path": "m", "stage": "sft", "do_train": True, "dataset": "a", "template": "qwen",
        "output_dir": "out"}


def raw(**kw):
    return {k: (v, "test.yaml") for k, v in {**BASE, **kw}.items()}


def error_of(**kw) -> str:
    with pytest.raises(ConfigError) as err:
        build_config(raw(**kw))
    return str(err.value)


def test_several_unsupported_and_unknown_keys_are_reported_together():
    message = error_of(fp8=True, fp8_backend="te", shift_attn=True, mixture_of_depths="convert",
                       tensor_model_parallel_size=2, ray_num_workers=4, use_kt=True, sglang_maxlen=4096,
                       lerning_rate=1e-4)
    assert message.startswith("test.yaml: 9 keys that cannot be used:\n")
    for key in ("fp8", "fp8_backend", "shift_attn", "mixture_of_depths", "tensor_model_parallel_size",
                "ray_num_workers", "use_kt", "sglang_maxlen"):
        assert f"`{key}`" in message
    assert "  `fp8`, `fp8_backend`: LLaMA-Factory options that tunesmith does not support (precision: FP8 training)" \
        in message
    assert "unknown key `lerning_rate`; did you mean learning_rate" in message
    assert message.endswith("Remove the unsupported options, or switch them off (false / null).")


@pytest.mark.parametrize("key,value,reason", [
    ("pref_bco_weight", 0.5, "(loss variant: BCO term of the DPO loss); use `pref_loss`"),
    ("tensor_model_parallel_size", 2, "(distributed engine: Megatron-Core, LLaMA-Factory's USE_MCA=1"),
    ("pipeline_model_parallel_size", 4, "(distributed engine: Megatron-Core"),
    ("use_mca", True, "(distributed engine: Megatron-Core"),
    ("ray_run_name", "r", "(distributed engine: Ray, LLaMA-Factory's USE_RAY=1); start the processes with `torchrun"),
    ("ray_num_workers", 4, "(distributed engine: Ray"),
    ("use_hyper_parallel", True, "(distributed engine: HyperParallel)"),
    ("use_kt", True, "(hardware backend: KTransformers, MoE experts on the CPU with AMX)"),
    ("kt_weight_path", "w", "(hardware backend: KTransformers"),
    ("sglang_maxlen", 4096, "(inference backend: SGLang); use `infer_backend: huggingface` or "),
    ("kt_optimize_rule", "r.yaml", "(inference backend: KTransformers)"),
    ("use_unsloth", True, "(kernel library: Unsloth)"),
    ("eval_on_each_dataset", True, "(evaluation: per-dataset evaluation)"),
    ("download_mode", "force_redownload", "(evaluation: exam download mode); `tunesmith eval` reads exams"),
])
def test_each_unsupported_key_names_its_kind_and_what_to_use(key, value, reason):
    message = error_of(**{key: value})
    assert message.startswith(f"test.yaml: `{key}` is a LLaMA-Factory option that tunesmith does not support ")
    assert reason in message and "did you mean" not in message


def test_hub_tokens():
    """ms_hub_token is a model key (USE_MODELSCOPE_HUB=1); the Modelers hub's token is refused with what to use."""
    assert build_config(raw(ms_hub_token="ms-x", hf_hub_token="hf_x")).model.ms_hub_token == "ms-x"
    message = error_of(om_hub_token="om-x")
    assert "(model hub: the Modelers (openMind) hub); models come from local folders, the Hugging Face Hub or " \
        "ModelScope (USE_MODELSCOPE_HUB=1, with `ms_hub_token`)" in message


def test_megatron_config_is_answered_as_megatron():
    keys = {"tensor_model_parallel_size": 1, "sequence_parallel": True, "pipeline_model_parallel_size": 4,
            "bias_activation_fusion": True, "apply_rope_fusion": True, "use_distributed_optimizer": True,
            "overlap_param_gather": True, "overlap_grad_reduce": True, "moe_grouped_gemm": True,
            "moe_token_dispatcher_type": "alltoall", "expert_model_parallel_size": 2, "recompute_granularity": "full"}
    message = error_of(**keys)
    lines = message.splitlines()
    assert lines[0] == "test.yaml: 12 keys that cannot be used:"
    assert all(f"`{key}`" in lines[1] for key in keys)  # one line for the whole engine
    assert "(distributed engine: Megatron-Core" in lines[1] and "no tensor, pipeline, context or expert parallelism" \
        in lines[1]
    assert "unknown key" not in message


@pytest.mark.parametrize("keys", [
    {"use_galore": False, "galore_rank": 16, "galore_target": "all"},  # the feature is switched off
    {"use_badam": "false", "badam_mode": "layer"},
    {"pissa_init": False, "pissa_iter": 16},
    {"pref_bco_weight": 0.0, "use_kt": None, "sequence_parallel": False},
])
def test_options_left_off_are_accepted(keys):
    cfg = build_config(raw(**keys))
    assert not set(keys) & set(cfg.training)


def test_a_nested_section_is_answered_with_the_flat_keys():
    message = error_of(lora={"lora_rank": 8, "lora_alpha": 16})
    assert message == ("test.yaml: `lora:` is a nested section, but tunesmith's keys are flat: write `lora_rank`, "
                       "`lora_alpha` at the top level")


V1_CONFIG = """model: Qwen/Qwen3-4B
model_class: llm
peft_config:
  name: lora
  r: 16
  lora_alpha: 32
  lora_dropout: 0.05
  target_modules: all
kernel_config:
  name: auto
dist_config:
  name: deepspeed
  config_file: examples/deepspeed/ds_z3_config.json
train_dataset: data/v1_sft_demo.yaml
output_dir: ./outputs/test_lora
micro_batch_size: 1
cutoff_len: 2048
learning_rate: 1.0e-4
max_steps: 10
sample_backend: hf
max_new_tokens: 128
"""


def test_v1_layout_is_recognised_and_translated(tmp_path, monkeypatch):
    monkeypatch.delenv("USE_V1", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "v1_sft_demo.yaml").write_text("identity:\n  path: data/identity.json\n"
                                                        "alpaca_en_demo:\n  path: data/alpaca_en_demo.json\n")
    (tmp_path / "v1.yaml").write_text(V1_CONFIG)
    with pytest.raises(ConfigError) as err:
        load_config(["v1.yaml"])
    message = str(err.value)
    assert message.startswith("v1.yaml: this is LLaMA-Factory's v1 layout (LLaMA-Factory runs it with USE_V1=1); "
                              "tunesmith reads the v0 flat keys:\n")
    for line in ("  model: Qwen/Qwen3-4B  ->  model_name_or_path: Qwen/Qwen3-4B",
                 "  peft_config: {name: lora, r: 16, lora_alpha: 32, lora_dropout: 0.05, target_modules: all}  ->  "
                 "finetuning_type: lora, lora_rank: 16, lora_alpha: 32, lora_dropout: 0.05, lora_target: all",
                 "  dist_config: {name: deepspeed, config_file: examples/deepspeed/ds_z3_config.json}  ->  "
                 "deepspeed: examples/deepspeed/ds_z3_config.json; launch with `torchrun --nproc_per_node N` or "
                 "`accelerate launch`",
                 "  micro_batch_size: 1  ->  per_device_train_batch_size: 1",
                 "  train_dataset: data/v1_sft_demo.yaml  ->  dataset: identity, alpaca_en_demo (entries of "
                 "<dataset_dir>/dataset_info.json; data/v1_sft_demo.yaml itself is not read)",
                 "  sample_backend: hf  ->  infer_backend: huggingface (tunesmith chat / api)",
                 "  v1 defaults that v0 does not share, to keep them: bf16: true, gradient_checkpointing: true, "
                 "logging_steps: 1, lr_scheduler_type: constant"):
        assert line in message.splitlines()
    assert "did you mean" not in message and "unknown key" not in message


def test_v1_keys_on_the_command_line_with_use_v1_set(monkeypatch, tmp_path):
    monkeypatch.setenv("USE_V1", "1")
    with pytest.raises(ConfigError, match=re.escape(
            "command line: this is LLaMA-Factory's v1 layout (USE_V1=1 is set; tunesmith ignores it); tunesmith reads "
            "the v0 flat keys:\n  model: Qwen/Qwen3-0.6B  ->  model_name_or_path: Qwen/Qwen3-0.6B\n"
            "  optim_config: {name: muon, wd: 0.1}  ->  optim: <a transformers optimizer, e.g. adamw_torch> (the muon "
            "optimizer is not available), weight_decay: 0.1")):
        load_config(["model=Qwen/Qwen3-0.6B", "optim_config={name: muon, wd: 0.1}", "dataset=a", "output_dir=o"])


def test_every_unsupported_key_says_what_it_is_and_what_to_use():
    categories = {"PEFT method", "LoRA initialisation", "optimizer", "loss variant", "distributed engine",
                  "hardware backend", "kernel library", "precision", "quantisation", "model conversion",
                  "attention variant", "model config", "multimodal", "inference backend", "inference option",
                  "evaluation", "data sampling", "experiment tracker", "profiler", "metrics", "model hub",
                  "tokenization", "template option", "training argument"}
    for key, entry in UNSUPPORTED.items():
        assert entry.category in categories and entry.feature and entry.instead, key
        assert entry.switch is None or UNSUPPORTED[entry.switch].feature == entry.feature, key
