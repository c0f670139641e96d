"""Runs the UI starts: a second run cannot write into a folder a running one writes (this UI's, or another
UI's through its lock), stop ends the whole process group, stale locks block nothing, and progress is read
from trainer_log.jsonl."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.webui.app import Settings, WebUI
from tunesmith.webui.form import form_fields
from tunesmith.webui.jobs import CURVES, Jobs, curve_rows, pid_alive, progress_text, read_log
from tunesmith.webui.paths import PathPolicy

# A stand-in for `tunesmith ...`: starts a grandchild (to check the process group ends), writes its pid, sleeps.
SLEEPER = ("import subprocess, sys, time, pathlib; "
           "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
           "sys.argv[-1].endswith('.pid') and pathlib.Path(sys.argv[-1]).write_text(str(c.pid)); time.sleep(60)")


def sleeper_jobs(state, work) -> Jobs:
    jobs = Jobs(state, work)
    jobs.program = [sys.executable, "-c", SLEEPER]
    return jobs


def wait_for(path, timeout=20.0):
    end = time.time() + timeout
    while not (path.exists() and path.read_text()):
        assert time.time() < end, f"{path} never appeared"
        time.sleep(0.05)
    return int(path.read_text())


def test_a_running_output_dir_cannot_be_clobbered(tmp_path):
    state, work = tmp_path / "state", tmp_path / "work"
    work.mkdir()
    jobs = sleeper_jobs(state, work)
    out = work / "saves" / "run"
    job = jobs.start("train", [str(tmp_path / "child.pid")], work / "a.yaml", out)
    grandchild = wait_for(tmp_path / "child.pid")
    with pytest.raises(ConfigError, match=r"being written by a running train .*stop it first"):
        jobs.start("train", [str(tmp_path / "x.pid")], work / "b.yaml", out)
    other_ui = sleeper_jobs(state, work)  # a second UI on the same working directory sees the lock
    with pytest.raises(ConfigError, match="being written"):
        other_ui.start("export", [str(tmp_path / "y.pid")], work / "c.yaml", work / "saves" / "." / "run")
    second = jobs.start("train", [str(tmp_path / "z.pid")], work / "d.yaml", work / "saves" / "other")
    assert jobs.stop(out, grace=5.0)
    assert job.returncode is not None and not pid_alive(grandchild)  # the whole group ended
    assert jobs.holder(out) is None and other_ui.holder(out) is None
    again = jobs.start("train", [str(tmp_path / "w.pid")], work / "a.yaml", out)  # free again
    jobs.stop_all()
    assert not again.running and not second.running


def test_a_stale_lock_blocks_nothing(tmp_path):
    state, work = tmp_path / "state", tmp_path / "work"
    work.mkdir()
    jobs = sleeper_jobs(state, work)
    out = work / "run"
    lock = jobs.lock_path(out)
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": 2 ** 22 + 12345, "kind": "train"}))  # no such process
    assert jobs.holder(out) is None
    job = jobs.start("train", [str(tmp_path / "s.pid")], work / "a.yaml", out)  # the stale lock is replaced
    assert json.loads(lock.read_text())["pid"] == job.process.pid
    jobs.stop_all()
    assert not lock.exists()
    lock.write_text(json.dumps({"pid": os.getpid(), "kind": "train"}))  # a live process holds it
    assert jobs.holder(out)["pid"] == os.getpid()
    with pytest.raises(ConfigError, match="being written"):
        jobs.start("train", [str(tmp_path / "p.pid")], work / "a.yaml", out)


def test_start_refuses_before_the_yaml_is_rewritten(tmp_path, data_dir):
    work = tmp_path / "work"
    work.mkdir()
    ui = WebUI(Settings(PathPolicy.create(work, allowed=(data_dir,))))
    ui.jobs.program = [sys.executable, "-c", SLEEPER]
    form = {f.key: f.default for f in form_fields()} | {"model_name_or_path": "Qwen/Qwen3-0.6B", "dataset": ["arith"],
                                                        "dataset_dir": str(data_dir), "output_dir": "saves/a"}
    ui.start_train(form, "", "configs/a.yaml")
    saved = (work / "configs" / "a.yaml").read_text()
    assert "output_dir: saves/a" in saved and "max_steps" not in saved
    with pytest.raises(ConfigError, match="being written"):
        ui.start_train(form | {"max_steps": 5}, "", "configs/a.yaml")
    assert (work / "configs" / "a.yaml").read_text() == saved
    with pytest.raises(ConfigError, match="outside"):
        ui.start_train(form | {"output_dir": str(tmp_path / "elsewhere")}, "", "configs/b.yaml")
    assert not (work / "configs" / "b.yaml").exists()
    ui.jobs.stop_all()


def test_progress_and_curves_from_trainer_log(tmp_path):
    lines = [{"current_steps": 1, "total_steps": 4, "loss": 5.0, "lr": 1e-3, "special_loss": 7.5,
              "percentage": 25.0, "elapsed_time": "0:00:01", "remaining_time": "0:00:03"},
             {"current_steps": 2, "total_steps": 4, "loss": 4.0, "lr": 5e-4, "eval_loss": 4.5, "percentage": 50.0,
              "elapsed_time": "0:00:02", "remaining_time": "0:00:02"}]
    (tmp_path / "trainer_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"current_st')
    records = read_log(tmp_path)  # the line still being written is skipped
    assert [r["current_steps"] for r in records] == [1, 2]
    assert curve_rows(records, CURVES["loss"]) == [(1, 5.0, "loss"), (2, 4.0, "loss"), (2, 4.5, "eval_loss")]
    assert curve_rows(records, CURVES["special tokens"]) == [(1, 7.5, "special_loss")]
    assert progress_text(records, None) == ("no run started here; step 2/4 (50.0%), elapsed 0:00:02, remaining "
                                            "0:00:02, loss 4.0000")


def test_resume_predict_and_export_commands(tmp_path, data_dir):
    from tunesmith.config.load import load_config

    work = tmp_path / "work"
    (work / "saves" / "run").mkdir(parents=True)
    ui = WebUI(Settings(PathPolicy.create(work, allowed=(data_dir,))))
    ui.jobs.program = [sys.executable, "-c", SLEEPER]
    form = {f.key: f.default for f in form_fields()} | {
        "model_name_or_path": "Qwen/Qwen3-0.6B", "dataset": ["arith"], "dataset_dir": str(data_dir),
        "template": "qwen3_nothink", "cutoff_len": 256, "output_dir": "saves/run", "overwrite_output_dir": True}
    ui.start_train(form, "", "configs/train.yaml", resume=True)  # resume never starts over
    assert "overwrite_output_dir" not in (work / "configs" / "train.yaml").read_text()
    ui.jobs.stop_all()

    ui.start_predict(form, "", "saves/run", "arith", True, False, 32, "saves/run/predict", "configs/predict.yaml")
    job = ui.jobs.jobs[(work / "saves" / "run" / "predict").resolve()]
    assert job.process.args[-2:] == ["train", str(work / "configs" / "predict.yaml")]
    cfg = load_config([str(work / "configs" / "predict.yaml")])  # what `tunesmith train` reads
    assert cfg.training["do_predict"] and cfg.evaluation.predict_with_generate and "do_train" not in cfg.training
    assert cfg.model.model_name_or_path == str(work / "saves" / "run") and cfg.data.eval_dataset == ("arith",)
    assert cfg.data.template == "qwen3_nothink" and cfg.data.cutoff_len == 256
    assert cfg.generating.max_new_tokens == 32 and cfg.output_dir == "saves/run/predict"

    ui.start_export("saves/run", "exports/m", 2)
    job = ui.jobs.jobs[(work / "exports" / "m").resolve()]
    assert job.process.args[-4:] == ["export", str(work / "saves" / "run"), f"export_dir={work / 'exports' / 'm'}",
                                     "export_size=2"]
    with pytest.raises(ConfigError, match="`export_dir`.*outside"):
        ui.start_export("saves/run", str(tmp_path / "elsewhere"), 2)
    ui.jobs.stop_all()


def test_data_preview_marks_trained_spans(tmp_path, qwen2_model, data_dir):
    work = tmp_path / "work"
    work.mkdir()
    ui = WebUI(Settings(PathPolicy.create(work, allowed=(qwen2_model, data_dir))))
    form = {f.key: f.default for f in form_fields()} | {
        "model_name_or_path": str(qwen2_model), "dataset": ["arith"], "dataset_dir": str(data_dir),
        "template": "qwen3_nothink", "cutoff_len": 128, "output_dir": "saves/p"}
    text = ui.preview_data(form, "", "configs/p.yaml")
    assert "--- example 0" in text and "⟦1+1=2<|im_end|>⟧" in text, text  # the reply and its end of turn train
    assert not (work / "saves" / "p").exists()  # a preview writes no run


def test_two_uis_starting_at_once_get_one_run(tmp_path):
    """The lock is taken atomically: of several UIs racing for one folder exactly one starts its run."""
    from concurrent.futures import ThreadPoolExecutor

    state, work = tmp_path / "state", tmp_path / "work"
    work.mkdir()
    uis = [sleeper_jobs(state, work) for _ in range(6)]

    def start(i):
        try:
            return uis[i].start("train", [str(tmp_path / f"{i}.pid")], work / "a.yaml", work / "run")
        except ConfigError:
            return None

    with ThreadPoolExecutor(6) as pool:
        started = [job for job in pool.map(start, range(6)) if job is not None]
    assert len(started) == 1
    assert json.loads(uis[0].lock_path(work / "run").read_text())["pid"] == started[0].process.pid
    for jobs in uis:
        jobs.stop_all()
