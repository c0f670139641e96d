"""One timed preference-training run, in a fresh process, of either framework (run with that framework's
Python: tunesmith's venv or LLaMA-Factory's).

    python time_train.py tunesmith CONFIG.yaml --out RESULT.json
    python time_train.py llamafactory CONFIG.yaml --out RESULT.json [--set key=value ...]

CONFIG.yaml is the one training config both frameworks read; ``--set`` adds keys for one side only
(bench.py uses it to give LLaMA-Factory `disable_gradient_checkpointing: true`: off is tunesmith's
default already; see results.md). Each framework runs its own entry point as its CLI would (tunesmith:
``load_config`` + ``run_training``; LLaMA-Factory: ``run_exp``); nothing of either is copied or changed.
From the outside this script

- times ``transformers.Trainer.train`` (perf_counter around the call; both trainers inherit it), and
  every optimizer step with a TrainerCallback (on_step_begin .. on_step_end);
- keeps the trainer's log history (loss and metrics of every logged step) and ``train_runtime``;
- captures the encoded training data the framework built (by wrapping the function that returns it) and
  counts its tokens per sequence (chosen and rejected), so the tokens trained can be checked and counted;
- reports the process's peak RSS (``ru_maxrss``) and its RSS when training starts and ends.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import time
from pathlib import Path


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# Parts of the training loop, found in a cProfile by (file path suffix, function name); cumulative seconds.
# Both trainers run transformers' loop; each runs its own reference pass.
PARTS = {
    "training_step": [("transformers/trainer.py", "training_step")],  # forward passes + loss + backward
    "backward": [("torch/_tensor.py", "backward")],
    "reference": [("tunesmith/train/reference.py", "run"),
                  ("llamafactory/train/dpo/trainer.py", "compute_reference_log_probs")],
    "logps": [("tunesmith/stages/preference/losses.py", "sequence_logps"),  # log-probs of the replies
              ("llamafactory/train/trainer_utils.py", "get_batch_logps")],
    "clip_grad_norm": [("torch/nn/utils/clip_grad.py", "clip_grad_norm_")],
    "optimizer_step": [("torch/optim/adam.py", "step")],
}


def breakdown(profiler, prefix: str) -> dict:
    import io
    import pstats

    profiler.dump_stats(f"{prefix}.prof")
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(60)
    Path(f"{prefix}.txt").write_text(text.getvalue(), encoding="utf-8")
    parts = {}
    for label, keys in PARTS.items():
        total = 0.0
        for key, (_cc, _nc, _tt, ct, callers) in stats.stats.items():
            filename, _line, func = key
            if any(filename.endswith(suffix) and func == name for suffix, name in keys):
                # only calls from elsewhere (not recursive ones), so nothing is counted twice
                total += sum(v[3] for k, v in callers.items() if k != key) if callers else ct
        parts[label] = total
    return parts


def parse_value(text: str):
    import yaml

    return yaml.safe_load(text)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("framework", choices=("tunesmith", "llamafactory"))
    parser.add_argument("config")
    parser.add_argument("--out", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config key for this framework only (repeatable)")
    parser.add_argument("--profile", metavar="PREFIX",
                        help="run train() under cProfile: PREFIX.prof, PREFIX.txt (top entries) and a breakdown "
                             "of the loop into its parts in the result JSON")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("DISABLE_VERSION_CHECK", "1")  # LLaMA-Factory 0.9.5 pins older library ranges
    os.environ.setdefault("WANDB_DISABLED", "true")
    extra = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}

    t_import = time.perf_counter()
    import torch
    import transformers

    state: dict = {"step_s": [], "lengths": None}

    class StepTimer(transformers.TrainerCallback):
        def on_step_begin(self, args, st, control, **kw):
            state["_t"] = time.perf_counter()

        def on_step_end(self, args, st, control, **kw):
            state["step_s"].append(time.perf_counter() - state.pop("_t"))

    inner_train = transformers.Trainer.train

    @functools.wraps(inner_train)
    def timed_train(self, *a, **kw):
        state["rss_start_mib"] = rss_mib()
        state["peak_before_train_mib"] = peak_rss_mib()
        state["torch_threads"] = torch.get_num_threads()
        state["trainer_class"] = type(self).__name__
        state["trainable_params"] = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        start = time.perf_counter()
        try:
            out = inner_train(self, *a, **kw)
        finally:
            state["train_s"] = time.perf_counter() - start
            if profiler is not None:
                profiler.disable()
                state["profile_breakdown"] = breakdown(profiler, args.profile)
            state["rss_end_mib"] = rss_mib()
        state["train_runtime"] = out.metrics.get("train_runtime")
        state["global_step"] = self.state.global_step
        state["log_history"] = [dict(entry) for entry in self.state.log_history]
        return out

    transformers.Trainer.train = timed_train

    if args.framework == "tunesmith":
        from tunesmith.config.load import load_config
        from tunesmith.train import prepare as ts_prepare
        from tunesmith.train import run as ts_run
        from tunesmith.utils.logging import offline_environment, setup_logging

        inner_prepare = ts_prepare.prepare  # run_training imports it when called: patch the module

        @functools.wraps(inner_prepare)
        def capture_prepare(*a, **kw):
            prepared = inner_prepare(*a, **kw)
            train = prepared.data.train
            state["lengths"] = {
                "chosen": [len(ex.input_ids) for ex in train],
                "rejected": [len(ex.rejected_input_ids) for ex in train],
                "chosen_trained": [sum(1 for x in ex.labels if x != -100) for ex in train],
                "rejected_trained": [sum(1 for x in ex.rejected_labels if x != -100) for ex in train],
            }
            return prepared

        ts_prepare.prepare = capture_prepare
        argv = [args.config] + [f"{k}={v}" for k, v in extra.items()]
        cfg = load_config(argv)
        offline_environment()
        setup_logging()
        state["import_s"] = time.perf_counter() - t_import
        ts_run.run_training(cfg, extra_callbacks=[StepTimer()])
    else:
        import yaml
        from llamafactory.train import tuner
        from llamafactory.train.dpo import workflow as dpo_workflow
        from llamafactory.train.rm import workflow as rm_workflow

        def capture(module) -> None:
            inner = module.get_dataset

            @functools.wraps(inner)
            def wrapper(*a, **kw):
                out = inner(*a, **kw)
                train = out["train_dataset"]
                state["lengths"] = {
                    "chosen": [len(x) for x in train["chosen_input_ids"]],
                    "rejected": [len(x) for x in train["rejected_input_ids"]],
                    "chosen_trained": [sum(1 for t in x if t != -100) for x in train["chosen_labels"]],
                    "rejected_trained": [sum(1 for t in x if t != -100) for x in train["rejected_labels"]],
                }
                return out

            module.get_dataset = wrapper

        capture(dpo_workflow)
        capture(rm_workflow)
        cfg = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
        cfg.update(extra)
        state["import_s"] = time.perf_counter() - t_import
        tuner.run_exp(args=cfg, callbacks=[StepTimer()])

    history = state.pop("log_history", [])
    losses = [(e["step"], e["loss"]) for e in history if "loss" in e]
    steps = state["step_s"]
    result = {
        "framework": args.framework,
        "config": str(args.config),
        "extra": extra,
        **{k: v for k, v in state.items() if not k.startswith("_")},
        "peak_rss_mib": peak_rss_mib(),
        "first_loss": losses[0][1] if losses else None,
        "last_loss": losses[-1][1] if losses else None,
        "losses": [loss for _, loss in losses],
        "first_metrics": next((e for e in history if "loss" in e), None),
        "steady_step_s": sorted(steps[2:])[len(steps[2:]) // 2] if len(steps) > 2 else None,
    }
    Path(args.out).write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
