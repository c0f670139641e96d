"""The web UI reads and writes only under its working directory unless a folder is allowed (--allow-path)."""

from __future__ import annotations

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.webui.form import check_paths
from tunesmith.webui.paths import PathPolicy


def test_paths_under_the_working_directory_only(tmp_path):
    work, other = tmp_path / "work", tmp_path / "other"
    work.mkdir()
    other.mkdir()
    policy = PathPolicy.create(work)
    assert policy.check("saves/run", "output_dir") == work / "saves" / "run"
    assert policy.check(str(work / "x"), "output_dir") == work / "x"
    with pytest.raises(ConfigError, match=r"`output_dir`: .*other.* is outside .*--allow-path"):
        policy.check(str(other / "run"), "output_dir")
    with pytest.raises(ConfigError, match="outside"):
        policy.check("../other", "dataset_dir")  # `..` is resolved before the check
    (work / "link").symlink_to(other)
    with pytest.raises(ConfigError, match="outside"):
        policy.check("link/run", "output_dir")  # so are symlinks
    with pytest.raises(ConfigError, match="is empty"):
        policy.check("  ", "export_dir")
    allowed = PathPolicy.create(work, allowed=(other,))
    assert allowed.check("link/run", "output_dir") == other / "run"


def test_models_hub_ids_and_config_keys(tmp_path):
    policy = PathPolicy.create(tmp_path / "work")
    assert policy.check_model("Qwen/Qwen3-0.6B") == "Qwen/Qwen3-0.6B"  # a hub id is not a path
    with pytest.raises(ConfigError, match="model_name_or_path"):
        policy.check_model("/opt/models/x")
    with pytest.raises(ConfigError, match="outside"):
        policy.check_model("./../Qwen3")  # ./x is always local
    with pytest.raises(ConfigError, match="`export_dir`"):
        check_paths({"model_name_or_path": "Qwen/Qwen3-0.6B", "export_dir": "/tmp/elsewhere"}, policy)
    with pytest.raises(ConfigError, match="`adapter_name_or_path`"):
        check_paths({"adapter_name_or_path": "a,/etc"}, policy)
    with pytest.raises(ConfigError, match="`ref_model`"):
        check_paths({"ref_model": "/srv/ref"}, policy)
    with pytest.raises(ConfigError, match="`deepspeed`"):
        check_paths({"deepspeed": "../ds_z3_config.json"}, policy)
    with pytest.raises(ConfigError, match="`resume_from_checkpoint`"):
        check_paths({"resume_from_checkpoint": "/elsewhere/checkpoint-5"}, policy)
    check_paths({"model_name_or_path": "Qwen/Qwen3-0.6B", "dataset_dir": "data", "output_dir": "saves/x",
                 "reward_model": "http://127.0.0.1:8000/score", "resume_from_checkpoint": True,
                 "deepspeed": {"zero_optimization": {"stage": 0}}}, policy)


def test_webchat_refuses_a_path_outside_before_serving(tmp_path, monkeypatch, capsys):
    pytest.importorskip("gradio", reason="needs gradio (pip install 'tunesmith[webui]')")
    from tunesmith.cli import main

    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert main(["webchat", str(tmp_path / "model")]) == 2
    err = capsys.readouterr().err
    assert "is outside the folders this UI may use" in err and "--allow-path" in err


def test_loopback_hosts():
    from tunesmith.webui.app import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
