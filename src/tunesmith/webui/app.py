"""`tunesmith webui`: the whole workflow in a browser (gradio). Train: pick model, datasets, method, special
tokens and hyper-parameters, see and save the exact YAML, preview the data, start / stop / resume the run and
watch its progress, log and curves. Evaluate & predict, chat and export use the run's output folder."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.errors import ConfigError
from . import jobs as runs
from .chat import ChatSession, chat_tab
from .form import (GROUP_TITLES, build_values, check_paths, form_fields, form_from_yaml, save_yaml, to_yaml,
                   validate_yaml)
from .paths import PathPolicy

STATE_DIR = ".tunesmith_webui"  # console logs and locks, under the working directory
DEFAULT_OUTPUT = next(f.default for f in form_fields() if f.key == "output_dir")


@dataclass
class Settings:
    policy: PathPolicy
    host: str = "127.0.0.1"
    port: int | None = None
    share: bool = False
    user: str = "tunesmith"
    password: str | None = None
    state_dir: Path | None = None
    defaults: dict[str, Any] = field(default_factory=dict)  # initial form values (key -> value)

    def __post_init__(self) -> None:
        if self.state_dir is None:
            self.state_dir = self.policy.workdir / STATE_DIR


def dataset_names(dataset_dir: str, policy: PathPolicy) -> list[str]:
    try:
        info = json.loads((policy.check(dataset_dir, "dataset_dir") / "dataset_info.json").read_text("utf-8"))
    except (ConfigError, OSError, ValueError):
        return []
    return sorted(info) if isinstance(info, dict) else []


def frame(records: list[dict], keys: tuple[str, ...]):
    import pandas as pd

    return pd.DataFrame(runs.curve_rows(records, keys), columns=["step", "value", "series"])


def curve_summary(records: list[dict]) -> str:
    parts = []
    for keys in runs.CURVES.values():
        for key in keys:
            rows = runs.curve_rows(records, (key,))
            if rows:
                parts.append(f"{key}: {len(rows)} points, last {rows[-1][1]:.4g}")
    return "curves: " + ("; ".join(parts) if parts else "no points yet")


class WebUI:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.policy = settings.policy
        self.jobs = runs.Jobs(settings.state_dir, self.policy.workdir)
        self.chat = ChatSession(self.policy)
        self.fields = form_fields()

    # -- the train form ----------------------------------------------------------------------------------
    def config_text(self, form: dict[str, Any], extra: str, overwrite: bool | None = None) -> tuple[str, dict]:
        values = build_values(form, extra)
        if overwrite is not None:
            values.pop("overwrite_output_dir", None)
            if overwrite:
                values["overwrite_output_dir"] = True
        check_paths(values, self.policy)
        return to_yaml(values), values

    def save(self, text: str, path: str, purpose: str | None = None) -> Path:
        target = self.policy.check(path, "config file")
        if target.suffix not in (".yaml", ".yml"):
            raise ConfigError(f"config file {target}: name it .yaml")
        save_yaml(text, target, purpose=purpose)
        return target

    def start_train(self, form: dict[str, Any], extra: str, path: str, resume: bool = False) -> str:
        text, values = self.config_text(form, extra, overwrite=False if resume else None)
        output_dir = self.policy.check(values.get("output_dir", ""), "output_dir")
        held = self.jobs.holder(output_dir)
        if held is not None:  # before the YAML is written: a running job's config stays as it was
            raise ConfigError(f"{output_dir} is being written by a running {held.get('kind')} (process "
                              f"{held.get('pid')}); stop it first, or choose another output_dir")
        target = self.save(text, path)
        job = self.jobs.start("train", ["train", str(target)], target, output_dir)
        return f"{'resumed' if resume else 'started'} `tunesmith train {target}` (process {job.process.pid})"

    def preview_data(self, form: dict[str, Any], extra: str, path: str) -> str:
        text, _ = self.config_text(form, extra)
        validate_yaml(text, path)
        target = self.save(text, path)
        done = subprocess.run([sys.executable, "-m", "tunesmith.cli", "data", "preview", str(target), "--num", "3",
                               "--no-color"], cwd=self.policy.workdir, capture_output=True, text=True, timeout=600)
        return done.stdout + (f"\n{done.stderr}" if done.returncode else "")

    def tick(self, output_dir: str, predict_dir: str, export_dir: str):
        self.jobs.poll()
        try:
            out = self.policy.check(output_dir, "output_dir")
        except ConfigError:
            out = None
        records = runs.read_log(out) if out else []
        job = self.jobs.jobs.get(out) if out else None
        plots = [frame(records, keys) for keys in runs.CURVES.values()]
        return (runs.progress_text(records, job), *plots, curve_summary(records),
                runs.tail(job.log if job else None), self.side_status(predict_dir, "predict"),
                self.side_status(export_dir, "export"))

    def side_status(self, folder: str, kind: str) -> str:
        try:
            path = self.policy.check(folder, f"{kind} folder")
        except ConfigError:
            return ""
        job = self.jobs.jobs.get(path)
        lines = []
        if job is not None:
            state = "running" if job.running else f"finished (exit code {job.returncode})"
            lines += [f"{kind}: {state}", runs.tail(job.log, 20)]
        for name in ("eval_results.json", "predict_results.json"):
            if (path / name).is_file():
                lines.append(f"{name}: {(path / name).read_text(encoding='utf-8').strip()}")
        return "\n".join(lines)

    def start_predict(self, form: dict[str, Any], extra: str, model: str, eval_dataset: str, generate: bool,
                      do_eval: bool, max_new_tokens: Any, out: str, path: str) -> str:
        values = build_values(form, extra)
        keep = ("template", "dataset_dir", "cutoff_len", "max_samples", "seed")
        pred = {"model_name_or_path": model, "stage": "sft", **{k: values[k] for k in keep if k in values},
                "eval_dataset": eval_dataset, "do_predict": True, "predict_with_generate": bool(generate),
                "output_dir": out}
        if do_eval:
            pred["do_eval"] = True
        if max_new_tokens:
            pred["max_new_tokens"] = int(max_new_tokens)
        pred["model_name_or_path"] = self.policy.check_model(model)
        check_paths(pred, self.policy)
        target = self.save(to_yaml(pred), path)
        job = self.jobs.start("predict", ["train", str(target)], target, self.policy.check(out, "output_dir"))
        return f"started `tunesmith train {target}` (process {job.process.pid})"

    def start_export(self, model: str, export_dir: str, export_size: Any) -> str:
        model_path = self.policy.check_model(model)
        target = self.policy.check(export_dir, "export_dir")
        command = ["export", model_path, f"export_dir={target}"]
        if export_size:
            command.append(f"export_size={int(export_size)}")
        job = self.jobs.start("export", command, Path(model_path), target)
        return f"started `tunesmith {' '.join(command)}` (process {job.process.pid})"

    # -- the page ----------------------------------------------------------------------------------------
    def build(self, chat_only: bool = False):
        import gradio as gr

        with gr.Blocks(title="tunesmith") as demo:
            gr.Markdown(f"## tunesmith\nworking directory: `{self.policy.workdir}`")
            if chat_only:
                chat_tab(gr, self.chat, self.settings.defaults.get("chat_model", ""))
                return demo
            with gr.Tab("Train"):
                inputs = self.train_tab(gr)
            with gr.Tab("Evaluate & predict"):
                self.predict_tab(gr, inputs)
            with gr.Tab("Chat"):
                chat_model = chat_tab(gr, self.chat, self.settings.defaults.get("output_dir", DEFAULT_OUTPUT))
            with gr.Tab("Export"):
                self.export_tab(gr, inputs)
            inputs["output_dir"].change(lambda v: v, [inputs["output_dir"]], [chat_model])
            self.poll_every(gr, inputs)
        return demo

    def _component(self, gr, f, value):
        common = dict(label=f.key, info=f.help[:200] or None, elem_id=f.key)
        if f.key == "dataset":
            names = dataset_names(self.settings.defaults.get("dataset_dir", "data"), self.policy)
            chosen = list(value) if isinstance(value, (list, tuple)) else [v for v in str(value or "").split(",") if v]
            return gr.Dropdown(choices=sorted(set(names) | set(chosen)), value=chosen, multiselect=True,
                               allow_custom_value=True, **common)
        if f.kind == "bool":
            return gr.Checkbox(value=bool(value), **common)
        if f.kind in ("choice", "tristate"):
            return gr.Dropdown(choices=list(f.choices), value=value, **common)
        if f.kind in ("int", "float") and value is None:  # unset: a number box would show (and send) 0
            return gr.Textbox(value="", placeholder="unset", **common)
        if f.kind in ("int", "float"):
            return gr.Number(value=value, precision=0 if f.kind == "int" else None, **common)
        return gr.Textbox(value="" if value is None else str(value), **common)

    def train_tab(self, gr) -> dict:
        defaults = self.settings.defaults
        inputs: dict[str, Any] = {}
        for group, title in GROUP_TITLES.items():
            members = [f for f in self.fields if f.group == group]
            if not members:
                continue
            with gr.Accordion(title, open=group in ("model", "data", "train", "output")):
                with gr.Row(equal_height=False):
                    for f in members:
                        inputs[f.key] = self._component(gr, f, defaults.get(f.key, f.default))
        extra = gr.Textbox(label="other keys (YAML, any config key; wins over the form)", lines=3,
                           value=defaults.get("extra", ""), elem_id="extra_yaml")
        path = gr.Textbox(label="config file (saved here, run by `tunesmith train`)",
                          value=defaults.get("config_path", "webui_configs/train.yaml"), elem_id="config_path")
        with gr.Row():
            preview = gr.Button("Preview YAML", elem_id="preview_yaml")
            save = gr.Button("Save YAML", elem_id="save_yaml")
            load = gr.Button("Load YAML", elem_id="load_yaml")
            data = gr.Button("Preview data", elem_id="preview_data")
            start = gr.Button("Start", variant="primary", elem_id="start_train")
            resume = gr.Button("Resume", elem_id="resume_train")
            stop = gr.Button("Stop", variant="stop", elem_id="stop_train")
        status = gr.Markdown(elem_id="train_status")
        yaml_box = gr.Code(language="yaml", label="the YAML the run uses", elem_id="yaml_box")
        data_box = gr.Textbox(label="data preview (trained tokens between ⟦ and ⟧)", lines=8, elem_id="data_preview")
        progress = gr.Markdown("no run started here", elem_id="train_progress")
        with gr.Row():
            plots = [gr.LinePlot(x="step", y="value", color="series", label=name, elem_id=f"curve_{i}",
                                 height=260) for i, name in enumerate(runs.CURVES)]
        summary = gr.Markdown(elem_id="curve_summary")
        log = gr.Textbox(label="console", lines=10, max_lines=20, elem_id="train_log", autoscroll=True)

        keys = list(inputs)
        form_inputs = [inputs[k] for k in keys] + [extra, path]

        def form_of(args) -> tuple[dict, str, str]:
            return dict(zip(keys, args[:len(keys)])), args[len(keys)], args[len(keys) + 1]

        def guarded(fn):
            def run(*args):
                try:
                    return fn(*args)
                except ConfigError as err:
                    return f"**error:** {err}", gr.update()
            return run

        def show(*args):
            form, extra_text, target = form_of(args)
            text, _ = self.config_text(form, extra_text)
            validate_yaml(text, target)
            return "valid: `tunesmith train` reads this file as shown", text

        def do_save(*args):
            form, extra_text, target = form_of(args)
            text, _ = self.config_text(form, extra_text)
            return f"saved {self.save(text, target)}", text

        def do_start(*args, resume=False):
            form, extra_text, target = form_of(args)
            message = self.start_train(form, extra_text, target, resume=resume)
            return message, self.config_text(form, extra_text, overwrite=False if resume else None)[0]

        def do_stop(output_dir):
            try:
                out = self.policy.check(output_dir, "output_dir")
            except ConfigError as err:
                return f"**error:** {err}"
            return f"stopped the run in {out}" if self.jobs.stop(out) else "no run of this UI is writing there"

        def do_load(target):
            try:
                path = self.policy.check(target, "config file")
                form, extra_text = form_from_yaml(path.read_text(encoding="utf-8"), str(path))
            except (ConfigError, OSError) as err:
                return [gr.update()] * len(keys) + [gr.update(), f"**error:** {err}"]
            return [form[k] for k in keys] + [extra_text, f"loaded {path}"]

        load.click(do_load, [path], [inputs[k] for k in keys] + [extra, status])
        preview.click(guarded(show), form_inputs, [status, yaml_box])
        save.click(guarded(do_save), form_inputs, [status, yaml_box])
        start.click(guarded(do_start), form_inputs, [status, yaml_box])
        resume.click(guarded(lambda *a: do_start(*a, resume=True)), form_inputs, [status, yaml_box])
        stop.click(do_stop, [inputs["output_dir"]], [status])
        data.click(guarded(lambda *a: (f"preview of {form_of(a)[2]}", self.preview_data(*form_of(a)))),
                   form_inputs, [status, data_box])
        inputs["dataset_dir"].change(lambda d, cur: gr.update(choices=sorted(set(dataset_names(d, self.policy))
                                                                            | set(cur or [])), value=cur),
                                     [inputs["dataset_dir"], inputs["dataset"]], [inputs["dataset"]])
        self._timer_outputs = [progress, *plots, summary, log]
        self._form = (form_inputs, keys, form_of, guarded)
        return inputs

    def predict_tab(self, gr, inputs: dict) -> None:
        form_inputs, keys, form_of, guarded = self._form
        out_default = str(Path(self.settings.defaults.get("output_dir", DEFAULT_OUTPUT)) / "predict")
        model = gr.Textbox(label="model (a training output folder)", elem_id="predict_model",
                           value=self.settings.defaults.get("output_dir", DEFAULT_OUTPUT))
        with gr.Row():
            eval_dataset = gr.Textbox(label="eval_dataset", elem_id="eval_dataset")
            generate = gr.Checkbox(label="predict_with_generate", value=True, elem_id="predict_with_generate")
            do_eval = gr.Checkbox(label="do_eval (loss and perplexity)", value=False, elem_id="do_eval")
            max_new = gr.Number(label="max_new_tokens", value=64, precision=0, elem_id="predict_max_new_tokens")
        out = gr.Textbox(label="results folder (output_dir)", value=out_default, elem_id="predict_out")
        path = gr.Textbox(label="config file", value="webui_configs/predict.yaml", elem_id="predict_config")
        start = gr.Button("Start", variant="primary", elem_id="start_predict")
        status = gr.Markdown(elem_id="predict_status")
        results = gr.Textbox(label="progress and results", lines=8, elem_id="predict_results")
        inputs["output_dir"].change(lambda v: (v, str(Path(v or ".") / "predict")), [inputs["output_dir"]],
                                    [model, out])

        def run(*args):
            form, extra_text, _ = form_of(args[:len(form_inputs)])
            return self.start_predict(form, extra_text, *args[len(form_inputs):]), gr.update()

        start.click(guarded(run), form_inputs + [model, eval_dataset, generate, do_eval, max_new, out, path],
                    [status, results])
        self._predict = (out, results)

    def export_tab(self, gr, inputs: dict) -> None:
        model = gr.Textbox(label="model (a training output folder)", elem_id="export_model",
                           value=self.settings.defaults.get("output_dir", DEFAULT_OUTPUT))
        with gr.Row():
            export_dir = gr.Textbox(label="export_dir", value="exports/model", elem_id="export_dir")
            size = gr.Number(label="export_size (GB per shard)", value=5, precision=0, elem_id="export_size")
        start = gr.Button("Export", variant="primary", elem_id="start_export")
        status = gr.Markdown(elem_id="export_status")
        progress = gr.Textbox(label="progress", lines=6, elem_id="export_progress")
        inputs["output_dir"].change(lambda v: v, [inputs["output_dir"]], [model])
        start.click(lambda m, d, s: self._guard(self.start_export, m, d, s), [model, export_dir, size], [status])
        self._export = (export_dir, progress)

    def poll_every(self, gr, inputs: dict, seconds: float = 1.0) -> None:
        """One timer on the page (outside the tabs, which mount lazily) refreshes every run's progress."""
        predict_out, predict_results = self._predict
        export_dir, export_progress = self._export
        gr.Timer(seconds).tick(self.tick, [inputs["output_dir"], predict_out, export_dir],
                               self._timer_outputs + [predict_results, export_progress], show_progress="hidden")

    @staticmethod
    def _guard(fn, *args) -> str:
        try:
            return fn(*args)
        except ConfigError as err:
            return f"**error:** {err}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def launch(settings: Settings, chat_only: bool = False, block: bool = True, ui: WebUI | None = None):
    """Serve the UI; returns (ui, demo, url) (at once when ``block`` is false: tests)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    ui = ui or WebUI(settings)
    demo = ui.build(chat_only=chat_only)
    if not is_loopback(settings.host):
        print(f"tunesmith webui: listening on {settings.host}, reachable from other machines"
              + ("" if settings.password else "; consider --password"), file=sys.stderr)
    auth = (settings.user, settings.password) if settings.password else None
    demo.queue()
    _, url, _ = demo.launch(server_name=settings.host, server_port=settings.port, share=settings.share, auth=auth,
                            prevent_thread_lock=True, inbrowser=False, quiet=True, ssr_mode=False,
                            show_error=True)
    print(f"tunesmith webui: {url}", file=sys.stderr)
    if not block:
        return ui, demo, url
    try:
        demo.block_thread()
    finally:
        ui.jobs.stop_all()
    return ui, demo, url
