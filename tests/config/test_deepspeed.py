"""`deepspeed` is checked before anything loads: its config must exist and parse (LLaMA-Factory's "auto" values
are fine) and the deepspeed package must be installed (looked up, never imported)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.config.load import build_config

BASE = {"model_name_or_path": "m", "stage": "sft", "do_train": True, "dataset": "a", "template": "qwen",
        "output_dir": "out"}
# As LLaMA-Factory's examples/deepspeed/ds_z3_config.json: transformers fills in the "auto" values.
ZERO3 = {"train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
         "gradient_clipping": "auto", "zero_allow_untested_optimizer": True,
         "fp16": {"enabled": "auto", "loss_scale": 0, "loss_scale_window": 1000, "initial_scale_power": 16,
                  "hysteresis": 2, "min_loss_scale": 1},
         "bf16": {"enabled": "auto"},
         "zero_optimization": {"stage": 3, "overlap_comm": False, "contiguous_gradients": True,
                               "sub_group_size": 1e9, "reduce_bucket_size": "auto",
                               "stage3_prefetch_bucket_size": "auto", "stage3_param_persistence_threshold": "auto",
                               "stage3_max_live_parameters": 1e9, "stage3_max_reuse_distance": 1e9,
                               "stage3_gather_16bit_weights_on_model_save": True}}


def raw(**kw):
    return {k: (v, "test.yaml") for k, v in {**BASE, **kw}.items()}


@pytest.fixture
def deepspeed_installed(tmp_path, monkeypatch):
    """A stand-in deepspeed package that find_spec can locate (it is never imported)."""
    package = tmp_path / "site" / "deepspeed"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('tunesmith must not import deepspeed while validating')\n")
    monkeypatch.delitem(sys.modules, "deepspeed", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))


@pytest.fixture
def deepspeed_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "deepspeed", None)  # find_spec answers None: not importable


def ds_file(tmp_path, content) -> str:
    path = tmp_path / "ds_z3_config.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    return str(path)


def test_config_with_auto_values_is_accepted(tmp_path, deepspeed_installed):
    path = ds_file(tmp_path, ZERO3)
    assert build_config(raw(deepspeed=path)).training["deepspeed"] == path
    assert build_config(raw(deepspeed=ZERO3)).training["deepspeed"] == ZERO3  # inline mapping
    assert build_config(raw(deepspeed=json.dumps(ZERO3))).training["deepspeed"] == json.dumps(ZERO3)  # JSON text


@pytest.mark.parametrize("value", [None, False, "", "no"])
def test_deepspeed_left_off_needs_nothing(value, deepspeed_missing):
    assert not build_config(raw(deepspeed=value)).training.get("deepspeed")


def test_missing_config_file(tmp_path, deepspeed_installed, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^test.yaml: `deepspeed` config file examples/deepspeed/ds_z3_config.json "
                                          r"not found \(a relative path is read from .*\)$"):
        build_config(raw(deepspeed="examples/deepspeed/ds_z3_config.json"))


def test_config_that_is_not_json(tmp_path, deepspeed_installed):
    path = ds_file(tmp_path, '{"train_batch_size": "auto",\n "zero_optimization": {"stage": 3,}}')
    with pytest.raises(ConfigError, match=r"`deepspeed` config .*ds_z3_config.json is not valid JSON: line 2: "):
        build_config(raw(deepspeed=path))
    with pytest.raises(ConfigError, match=r"must hold a JSON object, got list"):
        build_config(raw(deepspeed=ds_file(tmp_path, "[1, 2]")))
    with pytest.raises(ConfigError, match=r"`deepspeed` JSON text is not valid JSON"):
        build_config(raw(deepspeed='{"zero_optimization": }'))
    with pytest.raises(ConfigError, match=r"`deepspeed` must be the path of a DeepSpeed JSON config"):
        build_config(raw(deepspeed=3))


def test_missing_package_is_a_config_error(tmp_path, deepspeed_missing):
    with pytest.raises(ConfigError, match=r"^test.yaml: `deepspeed` is set but the deepspeed package is not "
                                          r"installed; install it with `pip install deepspeed`"):
        build_config(raw(deepspeed=ds_file(tmp_path, ZERO3)))


def test_data_preview_does_not_need_deepspeed(tmp_path, deepspeed_missing):
    build_config(raw(deepspeed=ds_file(tmp_path, ZERO3)), purpose="data")


CHECK = """
import sys
sys.modules["deepspeed"] = None  # not installed
from tunesmith.config.errors import ConfigError
from tunesmith.config.load import load_config
try:
    load_config([sys.argv[1]])
except ConfigError as err:
    print(err)
print(sorted(m for m in ("torch", "transformers") if m in sys.modules))
"""


def test_missing_package_fails_before_torch_is_imported(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model_name_or_path: m\ndataset: a\noutput_dir: o\ntemplate: qwen\n"
                   f"deepspeed: {ds_file(tmp_path, ZERO3)}\n")
    out = subprocess.run([sys.executable, "-c", CHECK, str(cfg)], capture_output=True, text=True, check=True)
    assert "the deepspeed package is not installed; install it with `pip install deepspeed`" in out.stdout
    assert out.stdout.strip().endswith("[]")
