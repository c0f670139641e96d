"""Special-token learning speed: tunesmith's <extra_id_N> strategies against a naive baseline.

A bundled synthetic task in which the reply copies the prompt's sentence and wraps parts of it in
markers (numbers in <extra_id_0>..<extra_id_1>, colours in <extra_id_2>..<extra_id_3>). A random tiny
Qwen2-style model (whose tokenizer has no extra_id tokens) is fine-tuned in full mode, once per arm and
seed, with the same data, seed, budget, learning rate and schedule; only the special-token strategy
differs. Every eval step logs `eval_special_f1` (teacher-forced: at each trained position, is the argmax
next token a marker exactly where the reference has one, micro-averaged over the four markers) on the same
held-out split; the benchmark reports how many optimizer steps each arm needs to reach an F1 threshold.

    python bench/special_tokens/run.py                 # data, models, the six arms x 5 seeds, results.md
    python bench/special_tokens/run.py --references    # + naive on main data only, and `all` with weight 0.1
    python bench/special_tokens/run.py --seeds 0 --arms naive,all --max-steps 200 --no-results

Runs go to spawned worker processes, `--jobs` at a time, one torch thread each; every run is deterministic
(the same numbers whichever worker runs it and whatever ran before).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_WORK = REPO / "bench" / "work" / "special_tokens"

# ----------------------------------------------------------------------------------------------- data

OPEN_NUM, CLOSE_NUM, OPEN_COL, CLOSE_COL = (f"<extra_id_{i}>" for i in range(4))
MEANING = {OPEN_NUM: "opens a number", CLOSE_NUM: "closes a number",
           OPEN_COL: "opens a colour", CLOSE_COL: "closes a colour"}

COLOURS = "red blue green yellow purple orange black white pink brown grey silver".split()
NOUNS = ("dogs cats birds cars trees boats apples books cups hats stones ships lamps chairs keys coins "
         "bikes shoes fish frogs").split()
SUBJECTS = ("the cat|a boy|my aunt|the farmer|a girl|the teacher|our team|the old man|a child|the driver|"
            "my friend|the baker").split("|")
VERBS = "saw|found|bought|painted|counted|sold|kept|lost|carried|washed|drew|liked".split("|")
JOIN = ["and", "and", "but also", "then", "next to", "near", "with"]
ADJ = "small big old new tall quiet fast heavy".split()

INSTRUCTIONS = {
    "num": ["Tag the numbers.", "Mark every number.", "Wrap each number in its markers."],
    "col": ["Tag the colours.", "Mark every colour.", "Wrap each colour in its markers."],
    "both": ["Tag the numbers and the colours.", "Mark every number and every colour.",
             "Wrap each number and each colour in its markers."],
}


NUMBERS = ("2 3 4 5 6 7 8 9 two three four five six seven eight nine ten eleven twelve twenty thirty forty "
           "fifty hundred").split()


def phrase(rng: random.Random) -> list[tuple[str, str]]:
    """One noun phrase as (word, kind) pairs; kind is num, col or plain."""
    out: list[tuple[str, str]] = []
    if rng.random() < 0.75:
        out.append((rng.choice(NUMBERS), "num"))
    if rng.random() < 0.3:
        out.append((rng.choice(ADJ), "plain"))
    if rng.random() < 0.6:
        out.append((rng.choice(COLOURS), "col"))
    out.append((rng.choice(NOUNS), "plain"))
    return out


def sentence(rng: random.Random) -> list[tuple[str, str]]:
    words = [(w, "plain") for w in rng.choice(SUBJECTS).split()] + [(rng.choice(VERBS), "plain")]
    for i in range(rng.randint(1, 3)):
        if i:
            words += [(w, "plain") for w in rng.choice(JOIN).split()]
        words += phrase(rng)
    return words


def tag(words: list[tuple[str, str]], kinds: set[str]) -> str:
    """The sentence with each word of a tagged kind wrapped in its markers. Markers are glued to the
    preceding word (`saw<extra_id_0> seven<extra_id_1> dogs`), so the reply's other tokens are exactly the
    prompt's tokens and the markers themselves are the decisions the model has to learn."""
    wrap = {"num": (OPEN_NUM, CLOSE_NUM), "col": (OPEN_COL, CLOSE_COL)}
    out = ""
    for i, (w, k) in enumerate(words):
        sep = " " if i else ""
        out += f"{wrap[k][0]}{sep}{w}{wrap[k][1]}" if k in kinds else f"{sep}{w}"
    return out


def main_example(rng: random.Random) -> dict:
    while True:
        words = sentence(rng)
        task = rng.choice(["num", "col", "both", "both"])
        kinds = {"num", "col"} if task == "both" else {task}
        if any(k in kinds for _, k in words):
            break
    return {"instruction": rng.choice(INSTRUCTIONS[task]), "input": " ".join(w for w, _ in words),
            "output": tag(words, kinds)}


def warmup_examples() -> list[dict]:
    """What each marker means: the marker alone, and one wrapped word per marker pair."""
    rows = []
    for marker, meaning in MEANING.items():
        rows += [{"instruction": f"Write the marker that {meaning}.", "input": "", "output": marker},
                 {"instruction": "Which marker " + meaning + "?", "input": "", "output": marker},
                 {"instruction": "What does this marker do?", "input": marker, "output": f"It {meaning}."}]
    for n in ["3", "seven", "twelve", "forty", "8", "two"]:
        rows.append({"instruction": "Tag the numbers.", "input": f"it was {n}",
                     "output": f"it was{OPEN_NUM} {n}{CLOSE_NUM}"})
    for c in ["red", "blue", "green", "white", "pink", "grey"]:
        rows.append({"instruction": "Tag the colours.", "input": f"it was {c}",
                     "output": f"it was{OPEN_COL} {c}{CLOSE_COL}"})
    return rows


def make_data(data_dir: Path, n_train: int, n_eval: int, seed: int = 0) -> dict:
    """Writes main (train), main_eval (held out) and warmup, with dataset_info.json. Deterministic."""
    rng = random.Random(seed)
    seen, rows = set(), []
    while len(rows) < n_train + n_eval:
        ex = main_example(rng)
        key = (ex["instruction"], ex["input"])
        if key not in seen:  # no eval example duplicates a training prompt
            seen.add(key)
            rows.append(ex)
    shutil.rmtree(data_dir, ignore_errors=True)  # nothing stale: the whole folder is the tokenizer's corpus
    data_dir.mkdir(parents=True)
    files = {"main": rows[:n_train], "main_eval": rows[n_train:], "warmup": warmup_examples()}
    for name, content in files.items():
        (data_dir / f"{name}.json").write_text(json.dumps(content, indent=1, ensure_ascii=False) + "\n")
    info = {name: {"file_name": f"{name}.json", "formatting": "alpaca"} for name in files}
    (data_dir / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n")
    markers = sum(r["output"].count("<extra_id_") for r in files["main"])
    return {name: len(v) for name, v in files.items()} | {"markers_in_main": markers}


# ---------------------------------------------------------------------------------------------- model

MODEL_ARGS = ["--family", "qwen2", "--vocab-size", "1500", "--hidden-size", "128", "--num-layers", "4",
              "--intermediate-size", "384"]


def build_model(work: Path, data_dir: Path, seed: int) -> Path:
    """The random tiny model for one seed (the seed varies its weights; the tokenizer is the same)."""
    model = work / "models" / f"tiny-qwen2-s{seed}"
    args = [*MODEL_ARGS, "--seed", str(seed)]
    digest = hashlib.sha256()
    for f in sorted(data_dir.iterdir()):
        digest.update(f.name.encode() + f.read_bytes())
    digest.update(" ".join(args).encode())
    stamp = digest.hexdigest()
    if (model / "config.json").exists() and (model / ".bench-stamp").exists() \
            and (model / ".bench-stamp").read_text() == stamp:
        print(f"[bench] model {model} is up to date with the data; not rebuilt")
        return model
    shutil.rmtree(model, ignore_errors=True)
    cli = Path(sys.executable).parent / "tunesmith"
    cmd = [str(cli), "tiny-model", str(model), *args, "--corpus", str(data_dir)]
    print("[bench] " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    (model / ".bench-stamp").write_text(stamp)
    return model


def pretrain_copy(work: Path, model: Path, steps: int) -> Path:
    """Optional (--pretrain-steps): teach the random model to copy the task's sentences first (no markers,
    2,000 "Repeat the sentence." examples from another seed), so that the arms start from a model that
    already has the base skill. Cached by step count."""
    out = model.parent / f"{model.name}-copy{steps}"
    stamp = (model / ".bench-stamp").read_text() + f"copy{steps}"
    if (out / "config.json").exists() and (out / ".bench-stamp").exists() and (out / ".bench-stamp").read_text() == stamp:
        print(f"[bench] copy-pretrained model {out} is up to date; not retrained")
        return out
    data = work / "copy-data"
    data.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1234)
    rows = []
    for _ in range(2000):
        text = " ".join(w for w, _ in sentence(rng))
        rows.append({"instruction": rng.choice(["Repeat the sentence.", "Copy this sentence."]), "input": text,
                     "output": text})
    (data / "copy.json").write_text(json.dumps(rows, indent=1) + "\n")
    (data / "dataset_info.json").write_text(json.dumps({"copy": {"file_name": "copy.json"}}) + "\n")
    cfg = {"model_name_or_path": str(model), "stage": "sft", "do_train": True, "finetuning_type": "full",
           "dataset": "copy", "dataset_dir": str(data), "template": "qwen3_nothink", "cutoff_len": 128,
           "output_dir": str(out), "overwrite_output_dir": True, "save_strategy": "no", "report_to": "none",
           "per_device_train_batch_size": 16, "learning_rate": 3e-3, "max_steps": steps,
           "lr_scheduler_type": "cosine", "warmup_steps": 20, "logging_steps": max(1, min(100, steps // 10)), "seed": 0,
           "disable_tqdm": True}
    print(f"[bench] pretraining {model} to copy sentences for {steps} steps -> {out}", flush=True)
    with ProcessPoolExecutor(max_workers=1, mp_context=__import__("multiprocessing").get_context("spawn")) as pool:
        run = pool.submit(run_arm, {"arm": "copy-pretrain", "seed": 0, "config": cfg,
                                    "threads": os.cpu_count() or 1, "cache_dir": str(work / "tokenized-cache")})
        result = run.result()
    losses = [r["loss"] for r in result["log"] if "loss" in r]
    print(f"[bench] copy pretraining: loss {losses[0]:.3f} -> {losses[-1]:.3f} in {result['wall_s']:.0f}s")
    (out / ".bench-stamp").write_text(stamp)
    return out


# ----------------------------------------------------------------------------------------------- arms

RELATED = f"{OPEN_NUM}=[,{CLOSE_NUM}=],{OPEN_COL}={{,{CLOSE_COL}=}}"
MIXED = {"dataset": "warmup,main", "mix_strategy": "concat"}  # the same examples for every arm
WARMUP_FIRST = {"dataset": "warmup,main", "mix_strategy": "sequential"}

ARMS: dict[str, tuple[dict, str]] = {
    "naive": ({"init_special_tokens": "random", **MIXED},
              "random rows (zero-mean noise at the per-dimension scale of existing rows); warm-up + main "
              "shuffled together"),
    "related": ({"init_special_tokens_from": RELATED, **MIXED},
                "rows copied from `[`, `]`, `{`, `}`"),
    "related+freeze": ({"init_special_tokens_from": RELATED, "freeze_extra_id_steps": 20, **MIXED},
                       "related init, marker rows frozen for the first 20 steps"),
    "related+weight": ({"init_special_tokens_from": RELATED, "extra_id_loss_weight": 2.0, **MIXED},
                       "related init, marker targets weigh 2.0 in the loss"),
    "related+warmup": ({"init_special_tokens_from": RELATED, **WARMUP_FIRST},
                       "related init, warm-up set trained before the main set (sequential, every epoch)"),
    "all": ({"init_special_tokens_from": RELATED, "freeze_extra_id_steps": 20, "extra_id_loss_weight": 2.0,
             **WARMUP_FIRST},
            "related init + 20-step freeze + weight 2.0 + warm-up first"),
    # references, added with --references
    "naive-main": ({"init_special_tokens": "random", "dataset": "main"},
                   "naive, main data only (no warm-up examples at all)"),
    "all-w0.1": ({"init_special_tokens_from": RELATED, "freeze_extra_id_steps": 20, "extra_id_loss_weight": 0.1,
                  **WARMUP_FIRST},
                 "as `all` but with the seed example's weight 0.1"),
}
MAIN_ARMS = ["naive", "related", "related+freeze", "related+weight", "related+warmup", "all"]
REFERENCE_ARMS = ["naive-main", "all-w0.1"]


def base_config(model: Path, data_dir: Path, out: Path, seed: int, max_steps: int, eval_steps: int,
                lr: float) -> dict:
    return {
        "model_name_or_path": str(model), "stage": "sft", "do_train": True, "finetuning_type": "full",
        "dataset_dir": str(data_dir), "eval_dataset": "main_eval", "template": "qwen3_nothink",
        "cutoff_len": 128, "add_extra_id_tokens": 4,
        "output_dir": str(out), "overwrite_output_dir": True, "save_strategy": "no", "report_to": "none",
        "per_device_train_batch_size": 8, "per_device_eval_batch_size": 40, "learning_rate": lr,
        "max_steps": max_steps, "lr_scheduler_type": "constant_with_warmup", "warmup_steps": 10,
        "weight_decay": 0.01, "logging_steps": eval_steps, "eval_strategy": "steps", "eval_steps": eval_steps,
        "seed": seed, "data_seed": seed, "disable_tqdm": True, "dataloader_num_workers": 0,
    }


def run_arm(job: dict) -> dict:
    """One training run in this (fresh) process; returns the parsed log and timings."""
    import logging

    import torch

    torch.set_num_threads(job["threads"])
    os.environ["TUNESMITH_CACHE_DIR"] = job["cache_dir"]
    from tunesmith.config.load import build_config
    from tunesmith.utils.logging import offline_environment, setup_logging
    from tunesmith.train.callbacks.log_file import read_log
    from tunesmith.train.run import run_training

    raw = job["config"]
    out = Path(raw["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{out.name}.log", "w") as fh:  # the run's own output, kept out of the table
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(fh.fileno(), 1), os.dup2(fh.fileno(), 2)  # (workers are reused: each run gets its own file)
    offline_environment()
    setup_logging(logging.INFO)
    cfg = build_config({k: (v, "bench") for k, v in raw.items()})
    start, cpu = time.perf_counter(), time.process_time()
    result = run_training(cfg)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    logs = read_log(result.output_dir)
    done = {"arm": job["arm"], "seed": job["seed"], "wall_s": wall, "cpu_s": cpu, "global_step": result.global_step,
            "log": logs}
    (out / RESULT_FILE).write_text(json.dumps({"job": job_key(job), "result": done}))  # for --resume
    return done


RESULT_FILE = "bench_result.json"


def job_key(job: dict) -> dict:
    """What a finished run must match to be reused by --resume: its config and the model's stamp."""
    model = Path(job["config"]["model_name_or_path"])
    stamp = (model / ".bench-stamp").read_text() if (model / ".bench-stamp").exists() else None
    return {"config": job["config"], "model_stamp": stamp}


def finished(job: dict) -> dict | None:
    path = Path(job["config"]["output_dir"]) / RESULT_FILE
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return saved["result"] if saved.get("job") == json.loads(json.dumps(job_key(job))) else None


def summarise(run: dict, thresholds: list[float]) -> dict:
    evals = [(r["current_steps"], r["eval_special_f1"]) for r in run["log"] if "eval_special_f1" in r]
    train = [r for r in run["log"] if "special_loss" in r]
    if not evals:
        raise RuntimeError(f"{run['arm']} seed {run['seed']}: no eval_special_f1 in trainer_log.jsonl")
    if not train or "ordinary_loss" not in train[-1]:
        raise RuntimeError(f"{run['arm']} seed {run['seed']}: no special_loss/ordinary_loss in trainer_log.jsonl")
    reach = {t: next((s for s, f in evals if f >= t), None) for t in thresholds}
    # first eval from which F1 never drops below the threshold again (less sensitive to one lucky eval)
    stay = {}
    for t in thresholds:
        below = [i for i, (_, f) in enumerate(evals) if f < t]
        nxt = (below[-1] + 1) if below else 0
        stay[t] = evals[nxt][0] if nxt < len(evals) else None
    last = train[-1]
    return {"arm": run["arm"], "seed": run["seed"], "reach": reach, "stay": stay,
            "best_f1": max(f for _, f in evals), "final_f1": evals[-1][1],
            "special_loss": last["special_loss"], "ordinary_loss": last["ordinary_loss"],
            "special_acc": last.get("special_acc"), "wall_s": run["wall_s"], "cpu_s": run["cpu_s"], "curve": evals}


def median_steps(values: list[int | None]) -> float | None:
    """Median where a run that never reached counts as +infinity; None if the median run did not reach."""
    ordered = sorted(values, key=lambda v: float("inf") if v is None else v)
    n = len(ordered)
    mid = ordered[(n - 1) // 2], ordered[n // 2]
    if mid[0] is None or mid[1] is None:
        return None
    return (mid[0] + mid[1]) / 2


def headline_threshold(runs: list[dict], thresholds: list[float]) -> float:
    """The highest threshold naive reaches in the median run (the comparison is about naive's own target)."""
    naive = [r for r in runs if r["arm"] == "naive"]
    reached = [t for t in thresholds if naive and median_steps([r["reach"][t] for r in naive]) is not None]
    return max(reached) if reached else min(thresholds)


# --------------------------------------------------------------------------------------------- report

def fmt_steps(v: float | None, budget: int) -> str:
    return f">{budget}" if v is None else f"{v:g}"


def ratio(base: float | None, arm: float | None, budget: int) -> str:
    if base is None:
        return "n/a"
    if arm is None:
        return f"<{base / budget:.2f}"
    return f"{base / arm:.2f}"


def table(rows: list[dict], arms: list[str], thresholds: list[float], main_t: float, budget: int) -> str:
    by = {a: [r for r in rows if r["arm"] == a] for a in arms}
    med = {a: {t: median_steps([r["reach"][t] for r in by[a]]) for t in thresholds} for a in arms}
    stay = {a: median_steps([r["stay"][main_t] for r in by[a]]) for a in arms}
    base, base_stay = med.get("naive", {}).get(main_t), stay.get("naive")
    head = (["arm"] + [f"steps to F1≥{t:g}" for t in thresholds]
            + [f"**naive/arm** (F1≥{main_t:g})", "seeds reaching", f"steps to stay ≥{main_t:g}", "naive/arm (stay)",
               "best F1", "final F1", "final special_loss", "final ordinary_loss", "wall s", "cpu s"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a in arms:
        rs = by[a]
        reached = sum(r["reach"][main_t] is not None for r in rs)
        cells = ([a] + [fmt_steps(med[a][t], budget) for t in thresholds]
                 + [f"**{ratio(base, med[a][main_t], budget)}**", f"{reached}/{len(rs)}",
                    fmt_steps(stay[a], budget), ratio(base_stay, stay[a], budget),
                    f"{statistics.median(r['best_f1'] for r in rs):.3f}",
                    f"{statistics.median(r['final_f1'] for r in rs):.3f}",
                    f"{statistics.median(r['special_loss'] for r in rs):.3f}",
                    f"{statistics.median(r['ordinary_loss'] for r in rs):.3f}",
                    f"{statistics.median(r['wall_s'] for r in rs):.0f}",
                    f"{statistics.median(r['cpu_s'] for r in rs):.0f}"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_seed_table(rows: list[dict], arms: list[str], seeds: list[int], thresholds: list[float],
                   budget: int) -> str:
    head = ["arm"] + [f"seed {s}" for s in seeds]
    lines = [f"Steps to F1≥{' / '.join(f'{t:g}' for t in thresholds)}; best F1.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a in arms:
        cells = [a]
        for s in seeds:
            r = next((x for x in rows if x["arm"] == a and x["seed"] == s), None)
            cells.append("-" if r is None else
                         " / ".join(fmt_steps(r["reach"][t], budget) for t in thresholds) + f"; {r['best_f1']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def versions() -> str:
    import importlib.metadata as md

    parts = [f"python {platform.python_version()}"]
    for pkg in ["tunesmith", "torch", "transformers", "peft", "accelerate", "tokenizers"]:
        try:
            parts.append(f"{pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            pass
    return ", ".join(parts)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores visible, {platform.system()} {platform.release()}"


def report_run(s: dict, args, note: str = "") -> dict:
    print(f"[bench] {s['arm']:>15} seed {s['seed']}: " + ", ".join(
        f"F1≥{t:g} at {fmt_steps(s['reach'][t], args.max_steps)}" for t in s["reach"])
        + f", best F1 {s['best_f1']:.3f}, special_loss {s['special_loss']:.3f}, "
          f"ordinary_loss {s['ordinary_loss']:.3f}, {s['wall_s']:.0f}s wall, {s['cpu_s']:.0f}s cpu{note}", flush=True)
    return s


def cpu_times() -> tuple[float, float, float, float] | None:
    """Seconds since boot from /proc/stat: (all, busy, steal) for the whole machine, and this process plus
    its reaped children (the workers, tiny-model): to tell how much CPU other processes took meanwhile."""
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError, IndexError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    busy = sum(fields) - fields[3] - fields[4] - fields[7]  # minus idle, iowait, steal
    t = os.times()
    return sum(fields) / tick, busy / tick, fields[7] / tick, t.user + t.system + t.children_user + t.children_system


def contention(start, end) -> str:
    if not start or not end:
        return "n/a"
    total, busy, steal, ours = (b - a for a, b in zip(start, end))
    other = max(busy - ours, 0.0)
    return (f"other processes used {other:.0f} CPU-s ({100 * other / max(total, 1e-9):.0f}% of the machine), "
            f"hypervisor steal {100 * steal / max(total, 1e-9):.0f}%")


# ----------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=DEFAULT_WORK)
    p.add_argument("--arms", default=",".join(MAIN_ARMS), help=f"comma-separated, from {', '.join(ARMS)}")
    p.add_argument("--references", action="store_true", help=f"also run {', '.join(REFERENCE_ARMS)}")
    p.add_argument("--seeds", default="0,1,2,3,4", help="each seed: its own random model and data order")
    p.add_argument("--max-steps", type=int, default=500)
    p.add_argument("--eval-steps", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--thresholds", default="0.5,0.8,0.9",
                   help="F1 thresholds; the headline is the highest one naive reaches (median over seeds)")
    p.add_argument("--n-train", type=int, default=400)
    p.add_argument("--n-eval", type=int, default=40)
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--pretrain-steps", type=int, default=0,
                   help="first teach the random model to copy the sentences for this many steps (default 0: "
                        "the arms start from the random model)")
    p.add_argument("--no-results", action="store_true", help="do not write results.md")
    p.add_argument("--resume", action="store_true",
                   help="reuse runs an interrupted invocation finished (same config and model; runs are "
                        "deterministic), run only the rest")
    args = p.parse_args(argv)

    arms = [a for a in args.arms.split(",") if a]
    arms += [a for a in REFERENCE_ARMS if args.references and a not in arms]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        p.error(f"unknown arms {unknown}; known: {', '.join(ARMS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    thresholds = sorted(float(t) for t in args.thresholds.split(","))
    t0, stat0 = time.perf_counter(), cpu_times()
    work = args.work.resolve()
    data_dir = work / "data"
    counts = make_data(data_dir, args.n_train, args.n_eval)
    print(f"[bench] data in {data_dir}: {counts}")
    models = {seed: build_model(work, data_dir, seed) for seed in seeds}
    if args.pretrain_steps:
        models = {seed: pretrain_copy(work, m, args.pretrain_steps) for seed, m in models.items()}
    cache = work / "tokenized-cache"
    shutil.rmtree(cache, ignore_errors=True)
    if not args.resume:
        shutil.rmtree(work / "runs", ignore_errors=True)

    jobs, configs = [], {}
    for seed in seeds:
        for arm in arms:
            cfg = base_config(models[seed], data_dir, work / "runs" / f"{arm}-s{seed}", seed, args.max_steps,
                              args.eval_steps, args.lr) | ARMS[arm][0]
            configs[arm] = {k: v for k, v in cfg.items()
                            if k not in ("output_dir", "seed", "data_seed", "model_name_or_path")}
            jobs.append({"arm": arm, "seed": seed, "config": cfg, "threads": args.threads, "cache_dir": str(cache)})
    print(f"[bench] {len(jobs)} runs ({len(arms)} arms x {len(seeds)} seeds), {args.jobs} at a time, "
          f"{args.threads} torch thread(s) each, {args.max_steps} steps, eval every {args.eval_steps}; "
          f"run logs in {work / 'runs'}", flush=True)
    import multiprocessing as mp

    runs, todo = [], []
    for job in jobs:
        done = finished(job) if args.resume else None
        if done is None:
            todo.append(job)
        else:
            runs.append(report_run(summarise(done, thresholds), args, " (reused: --resume)"))
    args.reused = len(runs)
    # spawned workers, reused from run to run (each run seeds everything itself; a run's result does not
    # depend on what ran before it in the same worker, checked when this benchmark was written)
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=mp.get_context("spawn")) as pool:
        for run in pool.map(run_arm, todo):
            runs.append(report_run(summarise(run, thresholds), args))
    total, stat1 = time.perf_counter() - t0, cpu_times()
    args.contention = contention(stat0, stat1)
    main_t = headline_threshold(runs, thresholds)
    if main_t != thresholds[-1]:
        print(f"[bench] naive's median run does not reach F1≥{thresholds[-1]:g}: headline threshold {main_t:g}")
    tab = table(runs, arms, thresholds, main_t, args.max_steps)
    seeds_tab = per_seed_table(runs, arms, seeds, thresholds, args.max_steps)
    print()
    print(tab)
    print()
    print(seeds_tab)
    print(f"\n[bench] total {total:.0f}s; meanwhile {args.contention}")
    (work / "runs.json").write_text(json.dumps({"args": vars(args) | {"work": str(work)}, "headline": main_t,
                                                "runs": runs}, indent=1, default=str))
    if not args.no_results:
        write_results(HERE / "results.md", tab, seeds_tab, runs, arms, seeds, main_t, configs, counts, args, total)
    return 0


def write_results(path: Path, tab: str, seeds_tab: str, runs: list[dict], arms: list[str], seeds: list[int],
                  main_t: float, configs: dict, counts: dict, args, total: float) -> None:
    text = path.read_text() if path.exists() else ""
    marker = "<!-- analysis: written by hand for the run above; kept when run.py rewrites this file -->"
    analysis = text.split(marker, 1)[1] if marker in text else "\n\n(no analysis yet)\n"
    steps = [s for s, _ in runs[0]["curve"]]
    curves = [f"eval_special_f1 at steps {steps[0]}, {steps[1]}, ..., {steps[-1]}:", "", "```"]
    for r in sorted(runs, key=lambda r: (arms.index(r["arm"]), r["seed"])):
        curves.append(f"{r['arm']:>15} s{r['seed']}  " + " ".join(f"{f:.2f}" for _, f in r["curve"]))
    curves.append("```")
    common = configs[arms[0]].copy()
    for arm in arms:
        common = {k: v for k, v in common.items() if k in configs[arm] and configs[arm][k] == v}
    data_dir = common.pop("dataset_dir", None)
    model_dir = "bench/work/special_tokens/models/tiny-qwen2-s<seed>"
    if args.pretrain_steps:
        model_dir += f"-copy{args.pretrain_steps}"
    rel = lambda x: os.path.relpath(x, REPO) if x else x  # noqa: E731
    out = [
        "# Special-token learning speed: tunesmith's extra_id strategies vs a naive baseline",
        "",
        "Generated by `" + " ".join(["bash bench/special_tokens/run.sh", *sys.argv[1:]]) + "`"
        + f" on {dt.date.today().isoformat()}: "
        f"{len(runs)} training runs in {total / 60:.1f} min ({args.jobs} at a time, {args.threads} torch "
        f"thread each; meanwhile {args.contention})"
        + (f"; {args.reused} of the runs were finished by an earlier, interrupted invocation and reused "
           "(`--resume`; runs are deterministic), their wall/cpu times are from then." if args.reused else "."),
        "",
        f"- Machine: {machine()}",
        f"- Versions: {versions()}",
        f"- Options: `--seeds {args.seeds} --max-steps {args.max_steps} --eval-steps {args.eval_steps} "
        f"--lr {args.lr:g} --n-train {args.n_train} --n-eval {args.n_eval} --thresholds {args.thresholds} "
        f"--pretrain-steps {args.pretrain_steps}`",
        f"- Data (`{rel(data_dir)}`, generated with seed 0): {counts}",
        f"- Model, one per seed: `tunesmith tiny-model bench/work/special_tokens/models/tiny-qwen2-s<seed> "
        f"{' '.join(MODEL_ARGS)} --seed <seed> --corpus {rel(data_dir)}` (random weights, ~1M parameters; the "
        "tokenizer, trained on the data, is the same for every seed and has no extra_id tokens)"
        + (f"; then taught to copy the sentences for {args.pretrain_steps} steps (`--pretrain-steps`)"
           if args.pretrain_steps else ""),
        "",
        f"## Result: medians over seeds {', '.join(map(str, seeds))}; headline threshold F1 ≥ {main_t:g}",
        "",
        tab,
        "",
        f"Steps are optimizer steps (batch 8) at the first evaluation (every {args.eval_steps} steps) whose "
        f"`eval_special_f1` reached the threshold; `>{args.max_steps}` = not reached within the budget, and a "
        "median counts such a run as infinitely slow. naive/arm > 1: the arm needed fewer steps than naive; "
        "`<x`: the arm's median run never got there, so the ratio is at most x. \"Steps to stay\": the first "
        "evaluation from which F1 never fell below the threshold again. Losses are the last logging step's "
        f"training `special_loss` / `ordinary_loss` (unweighted cross-entropy, mean over the last "
        f"{args.eval_steps} steps), F1 is teacher-forced on the held-out `main_eval` split. Wall time: one run, "
        "data and model load to save, with another run beside it on the other core; cpu s: that process's CPU "
        "time (steps to a threshold do not depend on either).",
        "",
        "### Per seed",
        "",
        seeds_tab,
        "",
        "### Curves",
        "",
        *curves,
        "",
        "## Exact configs",
        "",
        f"Common to every arm, plus `model_name_or_path: {model_dir}`, `dataset_dir: {rel(data_dir)}`, "
        "`output_dir: bench/work/special_tokens/runs/<arm>-s<seed>`, and `seed` = `data_seed` = the seed:",
        "",
        "```yaml",
        *[f"{k}: {v}" for k, v in common.items()],
        "```",
        "",
        "Per arm:",
        "",
        *[f"- `{a}`: " + ", ".join(f"`{k}: {v}`" for k, v in configs[a].items()
                                   if k not in common and k not in ("model_name_or_path", "dataset_dir"))
          + f". {ARMS[a][1][0].upper()}{ARMS[a][1][1:]}." for a in arms],
        "",
        marker,
    ]
    path.write_text("\n".join(out) + analysis)
    print(f"[bench] wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
