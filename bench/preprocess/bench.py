"""Drive the preprocessing benchmark: every timed run in its own fresh process, then the table.

    python bench.py --root LF_ROOT --model TOKENIZER_DIR --lf-python LF_VENV/bin/python --work WORK_DIR

Runs, for each worker count: LLaMA-Factory (time_lf.py, in its venv, fresh HF datasets cache each
time), tunesmith (time_tunesmith.py, fresh tokenized-data cache each time) and bare tokenizers
encode_batch (time_encode.py, on the thread pool tunesmith ran with). Before each run it waits
(briefly) for other processes to leave the CPUs alone, records how much CPU they took during the
run, and repeats a run they disturbed (up to twice). Reports
medians, checks both frameworks produced the same examples and nearly the same tokens, prints the
table and writes results.md next to this file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
NPROC = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def log(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


def cpu_busy_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores, from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_for_quiet(max_wait_s: float, busy_limit: float = 0.25) -> None:
    """Before a timed run, wait (up to max_wait_s) while other processes keep >25% of the CPUs busy."""
    deadline, said = time.monotonic() + max_wait_s, False
    while True:
        before = cpu_busy_s()
        time.sleep(1.0)
        busy = (cpu_busy_s() - before) / NPROC
        if busy <= busy_limit or time.monotonic() >= deadline:
            if said:
                log(f"  ... CPUs now {100 * busy:.0f}% busy; going on")
            return
        if not said:
            log(f"  other processes keep the CPUs {100 * busy:.0f}% busy; waiting up to {max_wait_s:.0f}s")
            said = True


def run_timed(cmd: list[str], log_path: Path, out_path: Path, env: dict | None = None,
              quiet_wait_s: float = 0.0) -> dict:
    """Run one measurement in a fresh process; its stdout/stderr go to log_path; returns its JSON,
    plus ``others_cpu_pct``: CPU time other processes on the machine used meanwhile, in % of capacity."""
    out_path.unlink(missing_ok=True)
    if quiet_wait_s:
        wait_for_quiet(quiet_wait_s)
    busy0, mine0, t0 = cpu_busy_s(), children_cpu_s(), time.monotonic()
    with log_path.open("w", encoding="utf-8") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    wall = time.monotonic() - t0
    others = max(0.0, (cpu_busy_s() - busy0) - (children_cpu_s() - mine0))
    if proc.returncode != 0 or not out_path.exists():
        tail = "".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines(True)[-30:])
        sys.exit(f"[bench] failed ({proc.returncode}): {' '.join(cmd)}\n--- last lines of {log_path} ---\n{tail}")
    result = json.loads(out_path.read_text(encoding="utf-8"))
    result["others_cpu_pct"] = 100 * others / (wall * NPROC)
    return result


def py_query(python: str, code: str) -> str:
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def pick_template(lf_python: str) -> str:
    """qwen3_nothink when both frameworks know it, else qwen."""
    from tunesmith.templates.builtin import TEMPLATES

    lf_names = py_query(lf_python, "import os; os.environ['DISABLE_VERSION_CHECK']='1'\n"
                                   "from llamafactory.data import TEMPLATES; print(' '.join(TEMPLATES))").split()
    for name in ("qwen3_nothink", "qwen"):
        if name in lf_names and name in TEMPLATES:
            return name
    sys.exit("[bench] neither qwen3_nothink nor qwen is known to both frameworks")


def write_config(path: Path, root: Path, model: Path, template: str, workers: int, cutoff: int, out_dir: Path) -> None:
    """One training config, read unchanged by both frameworks."""
    lines = [
        f"model_name_or_path: {model}",
        "stage: sft",
        "do_train: true",
        "finetuning_type: lora",
        "dataset: bench_alpaca",
        f"dataset_dir: {root / 'data'}",
        f"template: {template}",
        f"cutoff_len: {cutoff}",
        "overwrite_cache: true",
        f"preprocessing_num_workers: {workers}",
        f"output_dir: {out_dir}",
        "report_to: none",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def median(results: list[dict], key: str) -> float | None:
    values = [r[key] for r in results if r.get(key) is not None]
    return statistics.median(values) if values else None


def compare_lengths(lf_path: Path, ts_path: Path) -> dict:
    lf = json.loads(lf_path.read_text())
    ts = json.loads(ts_path.read_text())
    out = {"same_count": len(lf["input"]) == len(ts["input"])}
    if out["same_count"]:
        out["input_diff"] = Counter(a - b for a, b in zip(lf["input"], ts["input"]))
        out["trained_diff"] = Counter(a - b for a, b in zip(lf["trained"], ts["trained"]))
        out["max_len_lf"], out["max_len_ts"] = max(lf["input"]), max(ts["input"])
    return out


def at_cutoff(checks: dict, cutoff: int) -> str:
    reach = max((c.get("max_len_lf", 0) for c in checks.values()), default=0) >= cutoff
    return "some examples reach it here" if reach else "none reaches it here"


def machine_info() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f"{kb / 2**20:.0f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    return {"nproc": NPROC, "cpu": model, "memory": mem, "python": platform.python_version(),
            "os": platform.platform()}


VERSIONS_CODE = (
    "import importlib.metadata as m\n"
    "for p in {pkgs!r}:\n"
    "    try: print(p, m.version(p))\n"
    "    except m.PackageNotFoundError: pass\n"
)


def versions(python: str, pkgs: tuple[str, ...]) -> str:
    out = py_query(python, VERSIONS_CODE.format(pkgs=pkgs))
    return ", ".join(out.splitlines())


def git_describe() -> str:
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"], capture_output=True,
                               text=True, check=True).stdout.strip()
        return commit + (" + uncommitted changes in src/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if not a or not b else f"{a / b:.1f}x"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, required=True, help="LLaMA-Factory-style root holding data/")
    parser.add_argument("--model", type=Path, required=True, help="tokenizer/model dir (tunesmith tiny-model)")
    parser.add_argument("--lf-python", required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cutoff-len", type=int, default=1024)
    parser.add_argument("--reps", type=int, default=3, help="runs of tunesmith and encode_batch (median)")
    parser.add_argument("--lf-reps", type=int, default=2, help="runs of LLaMA-Factory (median)")
    parser.add_argument("--quiet-wait", type=float, default=120.0,
                        help="before each run, wait up to this many seconds for other processes to go quiet")
    parser.add_argument("--max-others", type=float, default=10.0,
                        help="a run during which other processes took more than this %% of the CPUs is repeated")
    parser.add_argument("--retries", type=int, default=2, help="at most this many repeats of a disturbed run")
    parser.add_argument("--no-profile", action="store_true", help="skip the extra cProfile run of tunesmith")
    parser.add_argument("--results", type=Path, default=HERE / "results.md")
    args = parser.parse_args()

    root, model, work = args.root.resolve(), args.model.resolve(), args.work.resolve()
    logs, cfgs, raw, caches = work / "logs", work / "configs", work / "raw", work / "caches"
    for d in (logs, cfgs, raw):
        d.mkdir(parents=True, exist_ok=True)
    ts_python = sys.executable
    template = pick_template(args.lf_python)
    n_examples = len(json.loads((root / "data" / "bench_alpaca.json").read_text(encoding="utf-8")))
    log(f"{n_examples} examples, template {template}, cutoff_len {args.cutoff_len}, workers {args.workers}, "
        f"{args.reps} runs (tunesmith, encode_batch) / {args.lf_reps} runs (LLaMA-Factory), logs in {logs}")

    def timed_run(cmd, name, env=None, cache: Path | None = None):
        """run_timed, repeated (up to --retries times) while other processes disturbed it; ``cache`` is
        emptied before and after every attempt so each one starts cold."""
        for attempt in range(1 + args.retries):
            if cache is not None:
                shutil.rmtree(cache, ignore_errors=True)
            r = run_timed(cmd, logs / f"{name}.log", raw / f"{name}.json", env=env, quiet_wait_s=args.quiet_wait)
            if cache is not None:
                shutil.rmtree(cache, ignore_errors=True)
            if r["others_cpu_pct"] <= args.max_others or attempt == args.retries:
                break
            log(f"  {name}: other processes took {r['others_cpu_pct']:.0f}% of the CPUs meanwhile "
                f"({r['total_s' if 'total_s' in r else 'encode_batch_s']:.2f}s); running it again")
        r["attempts"] = attempt + 1
        return r

    results: dict = {"lf": {}, "ts": {}, "encode": {}}
    encode_by_threads: dict[str, list[dict]] = {}
    checks: dict = {}
    for w in args.workers:
        cfg = cfgs / f"workers{w}.yaml"
        write_config(cfg, root, model, template, w, args.cutoff_len, work / "out")
        results["lf"][w], results["ts"][w], results["encode"][w] = [], [], []
        for i in range(args.lf_reps):
            name, cache = f"lf_w{w}_r{i}", caches / f"lf_w{w}_r{i}"
            lengths = [f"--lengths={raw / f'lf_w{w}_lengths.json'}"] if i == 0 else []
            r = timed_run([args.lf_python, str(HERE / "time_lf.py"), str(cfg), f"--cache-dir={cache}",
                           f"--out={raw / (name + '.json')}", *lengths], name, cache=cache)
            results["lf"][w].append(r)
            log(f"LLaMA-Factory workers={w} run {i + 1}: total {r['total_s']:.2f}s (load {r.get('load_s', 0):.2f}, "
                f"convert {r.get('convert_s', 0):.2f}, tokenize {r.get('tokenize_s', 0):.2f}); {r['examples']} "
                f"examples, {r['tokens']} tokens; other processes {r['others_cpu_pct']:.0f}% CPU")
        for i in range(args.reps):
            name, cache = f"ts_w{w}_r{i}", caches / f"ts_w{w}_r{i}"
            lengths = [f"--lengths={raw / f'ts_w{w}_lengths.json'}"] if i == 0 else []
            r = timed_run([ts_python, str(HERE / "time_tunesmith.py"), str(cfg), f"--cache-dir={cache}",
                           f"--out={raw / (name + '.json')}", *lengths], name, cache=cache)
            results["ts"][w].append(r)
            log(f"tunesmith     workers={w} run {i + 1}: total {r['total_s']:.2f}s (read {r.get('read_s', 0):.2f}, "
                f"tokenizer calls {r.get('tokenize_s', 0):.2f}, cache key+write "
                f"{r.get('cache_key_s', 0) + r.get('cache_write_s', 0):.2f}); {r['examples']} examples, "
                f"{r['tokens']} tokens; other processes {r['others_cpu_pct']:.0f}% CPU")
        # The bare tokenizer gets the thread pool tunesmith ran with (RAYON_NUM_THREADS after its setup).
        threads = results["ts"][w][0].get("rayon_threads", "default")
        if threads in encode_by_threads:
            results["encode"][w] = encode_by_threads[threads]
            log(f"bare tokenizers, {threads} threads: measured above; not repeated")
        else:
            env = None if threads == "default" else {"RAYON_NUM_THREADS": threads, "RAYON_RS_NUM_CPUS": threads}
            label = f"all {NPROC} threads" if threads == "default" else f"{threads} thread(s)"
            for i in range(args.reps):
                name = f"encode_w{w}_r{i}"
                r = timed_run([ts_python, str(HERE / "time_encode.py"), str(cfg),
                               f"--out={raw / (name + '.json')}"], name, env=env)
                results["encode"][w].append(r)
                log(f"bare tokenizers, {label}, run {i + 1}: encode_batch {r['encode_batch_s']:.2f}s, "
                    f"encode_batch_fast {r['encode_batch_fast_s']:.2f}s; other processes "
                    f"{r['others_cpu_pct']:.0f}% CPU")
            encode_by_threads[threads] = results["encode"][w]
        checks[w] = compare_lengths(raw / f"lf_w{w}_lengths.json", raw / f"ts_w{w}_lengths.json")

    profile_path = None
    if not args.no_profile:
        w = args.workers[0]
        profile_path = work / f"profile_tunesmith_w{w}.txt"
        r = timed_run([ts_python, str(HERE / "time_tunesmith.py"), str(cfgs / f"workers{w}.yaml"),
                       f"--cache-dir={caches / 'ts_profile'}", f"--out={raw / 'ts_profile.json'}",
                       f"--profile={profile_path}"], "ts_profile", cache=caches / "ts_profile")
        log(f"tunesmith under cProfile (workers={w}): {r['total_s']:.2f}s; top entries in {profile_path}")

    serialisable_checks = {w: {k: (dict(v) if isinstance(v, Counter) else v) for k, v in c.items()}
                           for w, c in checks.items()}
    (work / "results.json").write_text(json.dumps({"results": results, "checks": serialisable_checks}, indent=1),
                                       encoding="utf-8")
    report = render(args, results, checks, template, n_examples, ts_python, profile_path)
    print()
    print(report)
    args.results.write_text(report, encoding="utf-8")
    log(f"wrote {args.results}")


def render(args, results, checks, template, n, ts_python, profile_path) -> str:
    eps = lambda s: "n/a" if not s else f"{n / s:,.0f}"  # noqa: E731
    m = machine_info()
    pools = {w: results["ts"][w][0].get("rayon_threads", "default") for w in args.workers}
    describe = lambda t: f"all {NPROC} cores" if t == "default" else f"RAYON_NUM_THREADS={t}"  # noqa: E731
    if len(set(pools.values())) == 1:
        ts_threads = (f"{describe(next(iter(pools.values())))} for every `preprocessing_num_workers` "
                      "(this version accepts the key but does not use it)")
    else:
        ts_threads = ", ".join(f"{describe(t)} with {w} worker(s)" for w, t in pools.items())
    lines = [
        "# Preprocessing speed: tunesmith vs LLaMA-Factory 0.9.5",
        "",
        "Written by `bash bench/preprocess/run.sh` (see bench/README.md).",
        "",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, {m['os']}, Python {m['python']}",
        f"- tunesmith {git_describe()}: "
        f"{versions(ts_python, ('tunesmith', 'transformers', 'tokenizers', 'datasets'))}",
        f"- LLaMA-Factory venv: "
        f"{versions(args.lf_python, ('llamafactory', 'transformers', 'tokenizers', 'datasets', 'torch'))}",
        f"- data: {n:,} synthetic alpaca examples (make_data.py, seed 0, ~40% Chinese), stage sft, template "
        f"`{template}`, cutoff_len {args.cutoff_len}; tokenizer: `tunesmith tiny-model --family qwen2 "
        "--vocab-size 8000` trained on the same data; one config file read by both frameworks",
        f"- medians of {args.reps} runs (tunesmith, encode_batch) and {args.lf_reps} runs (LLaMA-Factory), each run "
        "a fresh process; imports and tokenizer loading are not timed; both start from an empty cache "
        "(`overwrite_cache: true`, a new HF datasets cache dir / TUNESMITH_CACHE_DIR per run)",
        "",
        "| workers | LF tokenize s | LF total s | tunesmith total s | encode_batch s | LF/tunesmith | "
        "tunesmith/encode_batch | LF ex/s | tunesmith ex/s | encode_batch ex/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in args.workers:
        lf_tok, lf_tot = median(results["lf"][w], "tokenize_s"), median(results["lf"][w], "total_s")
        ts_tot, enc = median(results["ts"][w], "total_s"), median(results["encode"][w], "encode_batch_s")
        lines.append(f"| {w} | {fmt(lf_tok)} | {fmt(lf_tot)} | {fmt(ts_tot)} | {fmt(enc)} | {ratio(lf_tot, ts_tot)} | "
                     f"{ratio(ts_tot, enc)} | {eps(lf_tot)} | {eps(ts_tot)} | {eps(enc)} |")
    lines += [
        "",
        "- LF total = `get_dataset()`: load (`load_dataset`, JSON -> Arrow) + convert (`align_dataset`) + tokenize "
        "(`_get_preprocessed_dataset`: template, encode, mask; a `datasets.map` writing Arrow files). "
        "`preprocessing_num_workers` is its `num_proc` (worker processes).",
        "- tunesmith total = `load_training_data()` as `tunesmith train` calls it: read + align + template + "
        "tokenize + truncate + mask + write its tokenized-data cache, in memory, one process; it tokenizes on "
        f"the Rust tokenizer's thread pool: {ts_threads}.",
        "- encode_batch = bare `tokenizers` `encode_batch` over the rendered full texts (prompt + response; "
        "rendering not timed), on the same thread pool as tunesmith.",
        "",
        "Details (medians, s; `others` = CPU used by other processes on the machine during the runs, % of "
        "capacity, max over the runs: high values mean the timings are disturbed):",
        "",
        "| workers | LF load | LF convert | LF tokenize | ts read | ts tokenizer calls | ts cache key+write | ts rest | "
        "bare encode_batch_fast | bare fast, prompt/response apart | + ids to Python | others LF / ts / encode |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in args.workers:
        lf, ts, enc = results["lf"][w], results["ts"][w], results["encode"][w]
        ts_tot, ts_read, ts_tok = median(ts, "total_s"), median(ts, "read_s"), median(ts, "tokenize_s")
        ts_cache = (median(ts, "cache_key_s") or 0) + (median(ts, "cache_write_s") or 0)
        rest = ts_tot - (ts_read or 0) - (ts_tok or 0) - ts_cache if ts_tot is not None else None
        others = " / ".join(f"{max(r['others_cpu_pct'] for r in runs):.0f}%" for runs in (lf, ts, enc))
        lines.append(f"| {w} | {fmt(median(lf, 'load_s'))} | {fmt(median(lf, 'convert_s'))} | "
                     f"{fmt(median(lf, 'tokenize_s'))} | {fmt(ts_read)} | {fmt(ts_tok)} | {fmt(ts_cache)} | "
                     f"{fmt(rest)} | {fmt(median(enc, 'encode_batch_fast_s'))} | "
                     f"{fmt(median(enc, 'split_encode_batch_fast_s'))} | {fmt(median(enc, 'split_ids_s'))} | {others} |")
    lines += [
        "",
        "`ts tokenizer calls` = tunesmith's `tokenize_texts` (encode_batch_fast over prompts and responses as "
        "separate strings + ids to Python lists); the two `bare ... apart` columns are the same work without "
        "tunesmith around it; `ts rest` = total minus the other tunesmith columns (conversion, template, "
        "truncation/masks, bookkeeping).",
    ]
    retried = sum(r.get("attempts", 1) - 1 for runs in (*results["lf"].values(), *results["ts"].values(),
                                                       *results["encode"].values()) for r in runs)
    lines += ["", "All runs (s): " + "; ".join(
        f"{label} w={w}: " + ", ".join(f"{r['total_s' if key != 'encode' else 'encode_batch_s']:.2f}"
                                       for r in results[key][w])
        for key, label in (("lf", "LF"), ("ts", "tunesmith"), ("encode", "encode_batch")) for w in args.workers)
        + f". Runs repeated because other processes took >{args.max_others:.0f}% of the CPUs meanwhile: {retried}."]
    lines += ["", "## Same output?", ""]
    for w in args.workers:
        lf, ts = results["lf"][w][0], results["ts"][w][0]
        c = checks[w]
        lines.append(f"- workers={w}: examples LF {lf['examples']:,} / tunesmith {ts['examples']:,}; tokens LF "
                     f"{lf['tokens']:,} / tunesmith {ts['tokens']:,} (LF {lf['tokens'] - ts['tokens']:+,}, "
                     f"{100 * (lf['tokens'] - ts['tokens']) / max(ts['tokens'], 1):+.2f}%); trained tokens LF "
                     f"{lf['trained_tokens']:,} / tunesmith {ts['trained_tokens']:,}.")
        if c.get("same_count"):
            lines.append(f"  Per example, LF minus tunesmith (difference: number of examples): input tokens "
                         f"{dict(sorted(c['input_diff'].items()))}, trained tokens "
                         f"{dict(sorted(c['trained_diff'].items()))}; longest example LF {c['max_len_lf']}, "
                         f"tunesmith {c['max_len_ts']} tokens (cutoff_len {args.cutoff_len}).")
    first = results["encode"][args.workers[0]][0]
    lines += [
        f"- bare encode_batch of the full rendered texts: {first['encode_batch_tokens']:,} tokens.",
        "- Why LF has one more token per example: its ChatML assistant slot is `{{content}}<|im_end|>\\n`, so "
        "the newline after `<|im_end|>` belongs to every reply and is trained. tunesmith trains the reply "
        "through `<|im_end|>` and treats the newline as the separator in front of the next turn, dropping it "
        "after the last reply (the model stops at `<|im_end|>` and never has to produce it). With single-turn "
        "data that is exactly +1 input and +1 trained token per example; examples that reach cutoff_len "
        f"could also truncate differently by that one token ({at_cutoff(checks, args.cutoff_len)}).",
    ]
    if profile_path is not None:
        shown = profile_path.relative_to(REPO) if profile_path.is_relative_to(REPO) else profile_path
        lines += ["", f"A cProfile of the tunesmith call (workers={args.workers[0]}) is written to `{shown}`."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
