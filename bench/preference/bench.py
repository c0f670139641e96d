"""Drive the preference-training benchmark: every timed run in its own fresh process, then the table.

    python bench.py --root LF_ROOT --model MODEL_DIR --lf-python LF_VENV/bin/python --work WORK_DIR

For each case (stage x finetuning type) it writes one config that both frameworks read and runs
time_train.py alternately with tunesmith's Python and LLaMA-Factory's. Before each run it waits
(briefly) for other processes to leave the CPUs alone; while a run goes on it watches how much CPU
other processes take, stops the run as soon as they take a sustained share (torch's thread pool on a
half-taken 2-core machine slows down by an order of magnitude, so finishing such a run is wasted time)
and runs it again; a finished run that others disturbed more than --max-others is repeated too.
Reports medians, pairs/s and tokens/s counted on the same tokens for both, peak RSS and the losses,
prints the table and writes results.md next to this file.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

# The machine/version helpers and the CPU-contention probes are the preprocess benchmark's.
_spec = importlib.util.spec_from_file_location("preprocess_bench", HERE.parent / "preprocess" / "bench.py")
pre = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pre)
NPROC = pre.NPROC
TCK = os.sysconf("SC_CLK_TCK")

CASES = {  # name -> (stage, finetuning_type)
    "dpo-lora": ("dpo", "lora"),
    "dpo-full": ("dpo", "full"),
    "rm-lora": ("rm", "lora"),
}
LABEL = {"ts": "tunesmith", "lf": "LLaMA-Factory"}
MARKER = "<!-- reading: written by hand for the run above; kept when bench.py rewrites this file -->"


def log(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


def proc_cpu_s(pid: int) -> float:
    """CPU seconds of a running process (all its threads) and of its reaped children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / TCK


def write_config(path: Path, root: Path, model: Path, template: str, stage: str, ft: str, args, out_dir: Path) -> None:
    """One training config, read unchanged by both frameworks."""
    lines = [
        f"model_name_or_path: {model}",
        f"stage: {stage}",
        "do_train: true",
        f"finetuning_type: {ft}",
    ]
    if ft == "lora":
        lines += ["lora_rank: 8", "lora_alpha: 16", "lora_dropout: 0.0", "lora_target: all"]
    if stage == "dpo":
        lines += ["pref_loss: sigmoid", "pref_beta: 0.1"]
    lines += [
        "dataset: bench_dpo",
        f"dataset_dir: {root / 'data'}",
        f"template: {template}",
        f"cutoff_len: {args.cutoff_len}",
        "overwrite_cache: true",
        "disable_shuffling: true",  # both feed the pairs in file order: the same batches, the same padding
        f"output_dir: {out_dir}",
        "overwrite_output_dir: true",
        f"per_device_train_batch_size: {args.batch}",
        "gradient_accumulation_steps: 1",
        f"learning_rate: {args.lr[ft]:.1e}",  # 1.0e-05, not 1e-05: PyYAML (LLaMA-Factory) reads the latter as text
        "lr_scheduler_type: linear",
        f"max_steps: {args.max_steps}",
        "logging_steps: 1",
        "save_strategy: \"no\"",
        "report_to: none",
        "seed: 42",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_monitored(cmd: list[str], log_path: Path, out_path: Path, env: dict, args) -> dict:
    """Run one measurement in a fresh process. Returns its JSON plus ``others_cpu_pct`` (CPU other
    processes used meanwhile, % of the machine), or {"aborted": reason} / {"failed": tail of the log}."""
    out_path.unlink(missing_ok=True)
    pre.wait_for_quiet(args.quiet_wait)
    window: collections.deque = collections.deque(maxlen=args.abort_window)
    with log_path.open("w", encoding="utf-8") as fh:
        busy0, children0, t0 = pre.cpu_busy_s(), pre.children_cpu_s(), time.monotonic()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **env})
        last_busy, last_mine, aborted = busy0, 0.0, None
        while proc.poll() is None:
            time.sleep(1.0)
            busy, mine = pre.cpu_busy_s(), proc_cpu_s(proc.pid)
            if mine:
                window.append(max(0.0, (busy - last_busy) - (mine - last_mine)) / NPROC)
                last_busy, last_mine = busy, mine
            if len(window) == window.maxlen and statistics.mean(window) > args.abort_pct / 100:
                aborted = f"other processes took {100 * statistics.mean(window):.0f}% of the CPUs for {len(window)}s"
                proc.kill()  # only the process this function started
                proc.wait()
                break
        wall = time.monotonic() - t0
    others = max(0.0, (pre.cpu_busy_s() - busy0) - (pre.children_cpu_s() - children0))
    if aborted:
        return {"aborted": aborted}
    if proc.returncode != 0 or not out_path.exists():
        tail = "".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines(True)[-25:])
        tail = tail.replace(str(REPO) + "/", "")
        return {"failed": f"exit status {proc.returncode}", "tail": tail}
    result = json.loads(out_path.read_text(encoding="utf-8"))
    result["others_cpu_pct"] = 100 * others / (wall * NPROC)
    result["wall_s"] = wall
    return result


def median(runs: list[dict], key: str):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def trained_pairs(lengths: dict, n: int) -> dict:
    """Token counts of the first n pairs (what max_steps x batch consumes in file order)."""
    c, r = lengths["chosen"][:n], lengths["rejected"][:n]
    return {"pairs": len(c), "tokens": sum(c) + sum(r),
            "reply_tokens": sum(lengths["chosen_trained"][:n]) + sum(lengths["rejected_trained"][:n])}


def padded_tokens(lengths: dict, n: int, batch: int, multiple: int = 8) -> int:
    """Tokens the forward passes actually process: each batch is 2 x batch rows padded to the longest
    (rounded up to a multiple of 8; both frameworks' collators do this)."""
    total = 0
    for start in range(0, n, batch):
        rows = lengths["chosen"][start:start + batch] + lengths["rejected"][start:start + batch]
        total += len(rows) * -(-max(rows) // multiple) * multiple
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, required=True, help="LLaMA-Factory-style root holding data/")
    parser.add_argument("--model", type=Path, required=True, help="model dir (tunesmith tiny-model)")
    parser.add_argument("--model-args", default="", help="how the model was built (for results.md)")
    parser.add_argument("--lf-python", required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--max-steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--cutoff-len", type=int, default=512)
    parser.add_argument("--lr-lora", type=float, default=1e-4)
    parser.add_argument("--lr-full", type=float, default=1e-5)
    parser.add_argument("--reps", type=int, default=3, help="runs of tunesmith per case (median)")
    parser.add_argument("--lf-reps", type=int, default=3, help="runs of LLaMA-Factory per case (median)")
    parser.add_argument("--quiet-wait", type=float, default=180.0,
                        help="before each run, wait up to this many seconds for other processes to go quiet")
    parser.add_argument("--max-others", type=float, default=10.0,
                        help="a finished run during which other processes took more than this %% of the CPUs is "
                             "repeated")
    parser.add_argument("--abort-pct", type=float, default=30.0,
                        help="stop a run once other processes take more than this %% of the CPUs ...")
    parser.add_argument("--abort-window", type=int, default=5, help="... averaged over this many seconds")
    parser.add_argument("--retries", type=int, default=3, help="at most this many repeats of a disturbed run")
    parser.add_argument("--no-profile", dest="profile", action="store_false",
                        help="skip the extra cProfile run of each framework (dpo-lora)")
    parser.add_argument("--results", type=Path, default=HERE / "results.md")
    args = parser.parse_args()
    args.lr = {"lora": args.lr_lora, "full": args.lr_full}

    root, model, work = args.root.resolve(), args.model.resolve(), args.work.resolve()
    logs, cfgs, raw = work / "logs", work / "configs", work / "raw"
    for d in (logs, cfgs, raw):
        d.mkdir(parents=True, exist_ok=True)
    ts_python = sys.executable
    template = pre.pick_template(args.lf_python)
    n_data = len(json.loads((root / "data" / "bench_dpo.json").read_text(encoding="utf-8")))
    n_pairs = args.max_steps * args.batch
    if n_pairs > n_data:
        sys.exit(f"[bench] max_steps x batch = {n_pairs} pairs but the data has only {n_data}")
    log(f"{n_data} pairs, {args.max_steps} steps of {args.batch} pairs = the first {n_pairs} pairs, template "
        f"{template}, cases {args.cases}, {args.reps} tunesmith / {args.lf_reps} LLaMA-Factory runs each; "
        f"logs in {logs}")

    env = {"TUNESMITH_CACHE_DIR": str(work / "ts_cache"), "HF_DATASETS_CACHE": str(work / "hf_cache"),
           "TOKENIZERS_PARALLELISM": "false"}
    # LLaMA-Factory enables gradient checkpointing unless told not to; tunesmith does not (and rejects
    # this LLaMA-Factory key), so LLaMA-Factory gets it on the side to run the same computation.
    lf_extra = ["--set", "disable_gradient_checkpointing=true"]

    def timed(framework: str, case: str, i: int, cfg: Path, profile: bool = False) -> dict:
        name = f"{case}_{framework}_" + ("profile" if profile else f"r{i}")
        python = ts_python if framework == "ts" else args.lf_python
        cmd = [python, str(HERE / "time_train.py"), "tunesmith" if framework == "ts" else "llamafactory",
               str(cfg), f"--out={raw / (name + '.json')}", *(lf_extra if framework == "lf" else []),
               *([f"--profile={work / ('profile_' + name)}"] if profile else [])]
        notes = []
        for attempt in range(1 + args.retries):
            shutil.rmtree(work / "out" / name, ignore_errors=True)
            r = run_monitored(cmd, logs / f"{name}.log", raw / f"{name}.json", env, args)
            if "failed" in r:
                log(f"  {LABEL[framework]} {case} run {i + 1} failed ({r['failed']}); log: {logs / (name + '.log')}")
                r["notes"] = notes
                return r
            if "aborted" in r:
                notes.append(f"attempt {attempt + 1} stopped: {r['aborted']}")
                log(f"  {name}: {r['aborted']}; stopped it, running it again")
                continue
            if r["others_cpu_pct"] <= args.max_others or attempt == args.retries:
                break
            notes.append(f"attempt {attempt + 1} repeated: other processes took {r['others_cpu_pct']:.0f}%")
            log(f"  {name}: other processes took {r['others_cpu_pct']:.0f}% of the CPUs meanwhile "
                f"(train {r['train_s']:.1f}s); running it again")
        r["attempts"], r["notes"] = attempt + 1, notes
        return r

    results: dict = {}
    for case in args.cases:
        stage, ft = CASES[case]
        cfg = cfgs / f"{case}.yaml"
        write_config(cfg, root, model, template, stage, ft, args, work / "out" / case)
        results[case] = {"ts": [], "lf": []}
        order = [(fw, i) for i in range(max(args.reps, args.lf_reps))
                 for fw in ("ts", "lf") if i < (args.reps if fw == "ts" else args.lf_reps)]
        for fw, i in order:
            if fw == "lf" and results[case]["lf"] and "failed" in results[case]["lf"][0]:
                continue  # LLaMA-Factory cannot run this case; once is enough to know
            r = timed(fw, case, i, cfg)
            results[case][fw].append(r)
            if "train_s" in r:
                log(f"{LABEL[fw]:13s} {case} run {i + 1}: train {r['train_s']:.2f}s (median step "
                    f"{r['steady_step_s']:.3f}s), peak RSS {r['peak_rss_mib']:.0f} MiB, loss {r['first_loss']:.4f} "
                    f"-> {r['last_loss']:.4f}; other processes {r['others_cpu_pct']:.0f}% CPU")
    profiles = {}
    if args.profile and "dpo-lora" in results:
        for fw in ("ts", "lf"):
            if any("train_s" in r for r in results["dpo-lora"][fw]):
                r = timed(fw, "dpo-lora", 0, cfgs / "dpo-lora.yaml", profile=True)
                if "profile_breakdown" in r:
                    profiles[fw] = r
                    log(f"{LABEL[fw]:13s} dpo-lora under cProfile: train {r['train_s']:.2f}s; top entries in "
                        f"{work / ('profile_dpo-lora_' + fw + '_profile.txt')}")
    (work / "results.json").write_text(json.dumps({"results": results, "profiles": profiles}, indent=1),
                                       encoding="utf-8")
    report = render(args, results, template, n_data, n_pairs, ts_python, profiles)
    print()
    print(report)
    old = args.results.read_text(encoding="utf-8") if args.results.exists() else ""
    analysis = old.split(MARKER, 1)[1] if MARKER in old else "\n\n(no reading yet)\n"
    args.results.write_text(report + "\n" + MARKER + analysis, encoding="utf-8")
    log(f"wrote {args.results}")


def profile_table(profiles: dict) -> list[str]:
    """Where the dpo-lora training loop spends its time, from one extra run of each under cProfile."""
    def parts(r: dict) -> dict:
        b = r["profile_breakdown"]
        return {
            "training loop (`train()`, under cProfile)": r["train_s"],
            "policy forward + loss (chosen and rejected in one batch)":
                b["training_step"] - b["backward"] - b["reference"],
            "reference forward (no grad, adapter switched off)": b["reference"],
            "backward": b["backward"],
            "  of the two forwards: reply log-probs from the logits": b["logps"],
            "optimizer step + gradient clipping": b["optimizer_step"] + b["clip_grad_norm"],
            "rest (batches, logging, callbacks, scheduler)":
                r["train_s"] - b["training_step"] - b["optimizer_step"] - b["clip_grad_norm"],
        }

    got = {fw: parts(r) for fw, r in profiles.items()}
    lines = ["", "Where the time goes (dpo-lora, one extra run of each under cProfile; cumulative seconds over "
             "all steps; profiles in `bench/work/preference/profile_*`):", "",
             "| part | tunesmith s | LF s |", "|---|---:|---:|"]
    for label in next(iter(got.values())):
        lines.append(f"| {label} | " + " | ".join(fmt(got[fw][label]) if fw in got else "n/a" for fw in ("ts", "lf"))
                     + " |")
    return lines


def fmt(x, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def render(args, results: dict, template: str, n_data: int, n_pairs: int, ts_python: str, profiles: dict) -> str:
    m = pre.machine_info()
    ok = {case: {fw: [r for r in runs if "train_s" in r] for fw, runs in by_fw.items()}
          for case, by_fw in results.items()}
    lines = [
        "# Preference-training speed: tunesmith vs LLaMA-Factory 0.9.5",
        "",
        "Written by `bash bench/preference/run.sh` (see bench/README.md).",
        "",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, {m['os']}, Python {m['python']}; "
        "float32 on the CPU",
        f"- tunesmith {pre.git_describe()}: "
        f"{pre.versions(ts_python, ('tunesmith', 'torch', 'transformers', 'peft', 'accelerate'))}",
        f"- LLaMA-Factory venv: "
        f"{pre.versions(args.lf_python, ('llamafactory', 'torch', 'transformers', 'peft', 'trl', 'accelerate'))}",
        f"- model: `tunesmith tiny-model {args.model_args}` (Qwen2ForCausalLM, random weights, its own BPE "
        "tokenizer trained on the data), loaded from the same checkpoint by both",
        f"- data: {n_data} synthetic ranking pairs in LLaMA-Factory's `dpo_en_demo` layout (make_data.py, seed 0: "
        "sharegpt, `ranking: true`, one in five with an earlier exchange); template "
        f"`{template}`, cutoff_len {args.cutoff_len} (no pair reaches it)",
        f"- every run: {args.max_steps} steps of {args.batch} pairs (the first {n_pairs} pairs, in file order: "
        "`disable_shuffling: true`, so both frameworks train the same batches), AdamW, linear schedule, lr "
        f"{args.lr['lora']:g} (lora: rank 8, alpha 16, all linear layers) / {args.lr['full']:g} (full), "
        "`logging_steps: 1`, `save_strategy: no`, no evaluation, no gradient checkpointing "
        "(see below), one config file read by both frameworks",
        f"- medians of {args.reps} tunesmith and {args.lf_reps} LLaMA-Factory runs per case, each run a fresh "
        "process; timed: `Trainer.train()` (the training loop: batches, forward/backward passes including the "
        "reference pass, optimizer steps, logging); not timed: imports, data preprocessing, model loading, the "
        "final save",
        "",
        "| case | tunesmith s | LF s | tunesmith/LF speed | tunesmith pairs/s | LF pairs/s | tunesmith tok/s | "
        "LF tok/s | tunesmith peak RSS MiB | LF peak RSS MiB | loss step 1 ts / LF | "
        f"loss step {args.max_steps} ts / LF |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    counts = {}
    for case in results:
        ts, lf = ok[case]["ts"], ok[case]["lf"]
        ref = (ts or lf)
        if not ref:
            lines.append(f"| {case} | failed | failed | | | | | | | | | |")
            continue
        tok = trained_pairs(ref[0]["lengths"], n_pairs)
        counts[case] = tok
        ts_s, lf_s = median(ts, "train_s"), median(lf, "train_s")
        rate = lambda s, k: "n/a" if not s else f"{tok[k] / s:,.1f}" if k == "pairs" else f"{tok[k] / s:,.0f}"  # noqa: E731
        speed = f"**{lf_s / ts_s:.2f}x**" if ts_s and lf_s else "n/a"
        loss = lambda key: " / ".join(fmt(r[0][key] if r else None, ".4f") for r in (ts, lf))  # noqa: E731
        lines.append(
            f"| {case} | {fmt(ts_s)} | {fmt(lf_s) if lf else 'cannot run'} | {speed} | {rate(ts_s, 'pairs')} | "
            f"{rate(lf_s, 'pairs')} | {rate(ts_s, 'tokens')} | {rate(lf_s, 'tokens')} | "
            f"{fmt(median(ts, 'peak_rss_mib'), '.0f')} | {fmt(median(lf, 'peak_rss_mib'), '.0f')} | "
            f"{loss('first_loss')} | {loss('last_loss')} |")
    lines += [
        "",
        "- `tunesmith/LF speed` = LF time / tunesmith time (above 1: tunesmith is faster). pairs/s and tok/s divide "
        "the same counts by each framework's time: tokens = the non-pad tokens of the trained pairs, chosen and "
        "rejected sequences with their prompts, as tunesmith encodes them (LLaMA-Factory's encoding has one more "
        "token per sequence, see below).",
        "- peak RSS = `ru_maxrss` of the run's process (model, data, reference, optimizer state, "
        "activations; both processes import their whole framework).",
        "",
        "Details (medians; `step` = median time of one optimizer step, steps 3 onwards; `RSS at start` = resident "
        "memory when `train()` is called; `others` = the most CPU other processes took during any counted run, "
        "% of the machine):",
        "",
        "| case | framework | train s | step s | train_runtime s | RSS at start MiB | peak RSS MiB | trainable params | "
        "runs (train s) | others | repeats |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for case in results:
        for fw in ("ts", "lf"):
            runs = ok[case][fw]
            if not runs:
                continue
            repeats = sum(r.get("attempts", 1) - 1 for r in results[case][fw])
            lines.append(
                f"| {case} | {LABEL[fw]} | {fmt(median(runs, 'train_s'))} | {fmt(median(runs, 'steady_step_s'), '.3f')} "
                f"| {fmt(median(runs, 'train_runtime'))} | {fmt(median(runs, 'rss_start_mib'), '.0f')} | "
                f"{fmt(median(runs, 'peak_rss_mib'), '.0f')} | {runs[0]['trainable_params']:,} | "
                f"{', '.join(format(r['train_s'], '.2f') for r in runs)} | "
                f"{max(r['others_cpu_pct'] for r in runs):.0f}% | {repeats} |")
    lines += ["", "## Same work?", ""]
    for case in results:
        ts, lf = ok[case]["ts"], ok[case]["lf"]
        if not (ts and lf):
            failed = [r for r in results[case]["lf"] if "failed" in r]
            if failed:
                lines.append(f"- {case}: LLaMA-Factory failed: {failed[0]['failed']}; last lines of its log:")
                lines += ["", "```", failed[0]["tail"].rstrip(), "```", ""]
            continue
        a, b = trained_pairs(ts[0]["lengths"], n_pairs), trained_pairs(lf[0]["lengths"], n_pairs)
        pa = padded_tokens(ts[0]["lengths"], n_pairs, args.batch)
        pb = padded_tokens(lf[0]["lengths"], n_pairs, args.batch)
        diffs = [abs(x - y) for x, y in zip(ts[0]["losses"], lf[0]["losses"])]
        lines.append(
            f"- {case}: {a['pairs']} pairs trained by both; tokens tunesmith {a['tokens']:,} / LF {b['tokens']:,} "
            f"({b['tokens'] - a['tokens']:+,}), reply tokens scored {a['reply_tokens']:,} / {b['reply_tokens']:,}; "
            f"with padding the forward passes see {pa:,} / {pb:,} token positions. Loss per step, first run of "
            f"each: largest difference {max(diffs):.4f} over {len(diffs)} logged steps "
            f"(step 1: {ts[0]['losses'][0]:.6f} / {lf[0]['losses'][0]:.6f})."
            + (" The reward heads start from different random values (tunesmith: a `score` linear without bias, "
               "LLaMA-Factory: trl's value head, a linear with bias behind a dropout), so rm losses part after "
               "step 1." if CASES[case][0] == "rm" else ""))
    lines += [
        "- LLaMA-Factory's ChatML assistant slot is `{{content}}<|im_end|>\\n`: the newline after `<|im_end|>` is "
        "part of every reply and trained, so each of its sequences is one token longer; tunesmith ends the reply "
        "at `<|im_end|>`.",
        "- Gradient checkpointing: LLaMA-Factory turns it on unless `disable_gradient_checkpointing: true`; "
        "tunesmith leaves it off by default. To run the same computation LLaMA-Factory is given "
        "`disable_gradient_checkpointing: true` on top of the shared config (time_train.py `--set`).",
    ]
    if profiles:
        lines += profile_table(profiles)
    notes = [(case, fw, i, n) for case in results for fw in ("ts", "lf")
             for i, r in enumerate(results[case][fw]) for n in r.get("notes", [])]
    if notes:
        lines += ["", "Disturbed runs (stopped or repeated): " + "; ".join(
            f"{case} {LABEL[fw]} run {i + 1}: {n}" for case, fw, i, n in notes) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
