"""Runs started from the UI: `tunesmith train|export` in a subprocess of its own process group, its console
output in a log file, a lock per output folder so that a second run cannot write into a folder a running one
writes, and progress read from the output folder's trainer_log.jsonl."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config.errors import ConfigError

LOG_FILE = "trainer_log.jsonl"  # what train/callbacks/log_file.py writes, one JSON line per logging step
CURVES = {  # plot -> the trainer_log.jsonl keys drawn in it
    "loss": ("loss", "eval_loss"),
    "learning rate": ("lr",),
    "special tokens": ("special_loss", "ordinary_loss", "special_acc"),
}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a finished child not yet reaped is a zombie: not running
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def _group_gone(pgid: int, deadline: float) -> bool:
    """Whether every process of the group has ended (live ones only: a zombie is not running), by ``deadline``."""
    while True:
        members = [p for p in Path("/proc").glob("[0-9]*") if _pgid(p) == pgid]
        if not any(pid_alive(int(p.name)) for p in members):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _pgid(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class Job:
    kind: str  # train | export | predict
    output_dir: Path
    config: Path
    log: Path
    process: subprocess.Popen
    started: float = field(default_factory=time.time)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll()


class Jobs:
    """The UI's runs. ``state_dir`` holds the console logs and the locks (one file per output folder, naming the
    process that writes it); a lock whose process is gone is stale and ignored, so a crashed UI blocks nothing."""

    def __init__(self, state_dir: Path, workdir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.workdir = Path(workdir)
        self.jobs: dict[Path, Job] = {}
        self.mutex = threading.Lock()
        self.program = [sys.executable, "-m", "tunesmith.cli"]  # what a command runs under (tests swap it)

    def lock_path(self, output_dir: Path) -> Path:
        digest = hashlib.sha1(str(Path(output_dir).resolve()).encode()).hexdigest()[:16]
        return self.state_dir / "locks" / f"{digest}.json"

    def holder(self, output_dir: Path) -> dict | None:
        """The live run writing into ``output_dir`` (this UI's, or another UI's through its lock), or None."""
        output_dir = Path(output_dir).resolve()
        job = self.jobs.get(output_dir)
        if job is not None and job.running:
            return {"pid": job.process.pid, "kind": job.kind, "output_dir": str(output_dir)}
        lock = self.lock_path(output_dir)
        try:
            held = json.loads(lock.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):  # being written by another UI this instant, or damaged long ago
            try:
                fresh = time.time() - lock.stat().st_mtime < 10
            except OSError:
                return None
            return {"pid": "?", "kind": "run", "output_dir": str(output_dir)} if fresh else None
        return held if pid_alive(int(held.get("pid", 0))) else None

    def _claim(self, output_dir: Path, kind: str, config: Path) -> Path:
        """Take the folder's lock, naming this UI's process until the run's own is known. Claims of one folder
        are serialised by an flock on a companion file (across UIs and threads), so the check for a live holder
        and the writing of the lock are one step; a stale lock (its process gone) is simply replaced."""
        import fcntl

        lock = self.lock_path(output_dir)
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock.with_name(lock.name + ".claim"), "a", encoding="utf-8") as claim:
            fcntl.flock(claim, fcntl.LOCK_EX)  # released when the file closes
            held = self.holder(output_dir)
            if held is not None:
                raise ConfigError(f"{output_dir} is being written by a running {held.get('kind', 'run')} (process "
                                  f"{held.get('pid')}); stop it first, or choose another output folder")
            self._write_lock(lock, os.getpid(), kind, output_dir, config)
        return lock

    @staticmethod
    def _write_lock(lock: Path, pid: int, kind: str, output_dir: Path, config: Path) -> None:
        tmp = lock.with_name(f"{lock.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"pid": pid, "kind": kind, "output_dir": str(output_dir), "config": str(config)}),
                       encoding="utf-8")
        tmp.replace(lock)  # readers see the old lock or the new one, never half of one

    def start(self, kind: str, command: list[str], config: Path, output_dir: Path) -> Job:
        """Start ``tunesmith <command...>`` writing into ``output_dir``; refuses a folder a live run writes."""
        output_dir = Path(output_dir).resolve()
        with self.mutex:  # two clicks at once in this UI: one run
            lock = self._claim(output_dir, kind, config)
            try:
                logs = self.state_dir / "logs"
                logs.mkdir(parents=True, exist_ok=True)
                log = logs / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{len(self.jobs)}.log"
                with log.open("w", encoding="utf-8") as out:
                    process = subprocess.Popen([*self.program, *command], cwd=self.workdir, stdout=out,
                                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                               start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            except BaseException:
                lock.unlink(missing_ok=True)
                raise
            job = Job(kind, output_dir, Path(config), log, process)
            self.jobs[output_dir] = job
            self._write_lock(lock, process.pid, kind, output_dir, config)  # now names the run's own process
        return job

    def stop(self, output_dir: Path, grace: float = 10.0) -> bool:
        """Terminate the run's whole process group (SIGTERM, SIGKILL after ``grace`` seconds)."""
        job = self.jobs.get(Path(output_dir).resolve())
        if job is None or not job.running:
            return False
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(job.process.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            try:
                job.process.wait(wait)
            except subprocess.TimeoutExpired:
                continue
            if _group_gone(job.process.pid, deadline):  # the run's own children (dataloader workers) too
                break
        self.release(job)
        return True

    def release(self, job: Job) -> None:
        lock = self.lock_path(job.output_dir)
        try:
            if json.loads(lock.read_text(encoding="utf-8")).get("pid") == job.process.pid:
                lock.unlink()
        except (OSError, ValueError):
            pass

    def poll(self) -> None:
        """Reap finished runs and drop their locks."""
        for job in self.jobs.values():
            if not job.running:
                self.release(job)

    def stop_all(self) -> None:
        for output_dir in list(self.jobs):
            self.stop(output_dir, grace=5.0)


def read_log(output_dir: Path) -> list[dict]:
    """trainer_log.jsonl's records; a line still being written is skipped."""
    path = Path(output_dir) / LOG_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def curve_rows(records: list[dict], keys: tuple[str, ...]) -> list[tuple[int, float, str]]:
    """(step, value, key) for every record holding a number under one of ``keys``."""
    return [(int(r.get("current_steps", 0)), float(r[key]), key) for r in records for key in keys
            if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]


def progress_text(records: list[dict], job: Job | None) -> str:
    state = ("running" if job.running else f"finished (exit code {job.returncode})") if job else "no run started here"
    if not records:
        return f"{state}; no logging step yet"
    last = records[-1]
    loss = next((r["loss"] for r in reversed(records) if isinstance(r.get("loss"), (int, float))), None)
    return (f"{state}; step {last.get('current_steps')}/{last.get('total_steps')} ({last.get('percentage', 0)}%), "
            f"elapsed {last.get('elapsed_time', '?')}, remaining {last.get('remaining_time', '?')}"
            + (f", loss {loss:.4f}" if loss is not None else ""))


def tail(path: Path | None, lines: int = 60) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
