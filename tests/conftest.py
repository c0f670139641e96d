"""Session-scoped tiny models and data, built offline and deterministically, shared by all tests."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` need a CUDA device; without one they are skipped, with the reason."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

# Small alpaca set the tiny models can overfit quickly.
ARITH = [{"instruction": f"What is {a}+{b}?", "input": "", "output": f"{a}+{b}={a + b}"}
         for a, b in [(1, 1), (2, 3), (4, 4), (5, 2), (3, 6), (7, 1), (2, 2), (6, 3)]]
SHAREGPT = [
    {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello there"},
                       {"from": "human", "value": "1+1=?"}, {"from": "gpt", "value": "2"}],
     "system": "Be brief."},
    {"conversations": [{"from": "human", "value": "name?"}, {"from": "gpt", "value": "Tuney"}]},
]
MINIMIND = [{"conversations": [{"role": "user", "content": "1+1=?"}, {"role": "assistant", "content": "2"}]}]
# Ranking pairs (LLaMA-Factory's dpo_en_demo layout) and KTO feedback rows (its kto_en_demo layout).
PAIRS = [{"conversations": [{"from": "human", "value": f"What is {a}+{b}?"}],
          "chosen": {"from": "gpt", "value": f"{a}+{b}={a + b}"},
          "rejected": {"from": "gpt", "value": f"{a}+{b}={a + b + 3} maybe"}}
         for a, b in [(1, 1), (2, 3), (4, 4), (5, 2), (3, 6), (7, 1), (2, 2), (6, 3)]]
PAIRS_ALPACA = [{"instruction": p["conversations"][0]["value"], "input": "", "chosen": p["chosen"]["value"],
                 "rejected": p["rejected"]["value"]} for p in PAIRS]
FEEDBACK = [{"messages": [{"role": "user", "content": p["conversations"][0]["value"]},
                          {"role": "assistant", "content": p[side]["value"]}], "label": side == "chosen"}
            for p in PAIRS for side in ("chosen", "rejected")]
PT_TEXTS = [{"text": f"Tuning a string: note {i} rises to note {i + 1}, then rests."} for i in range(24)]


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Tokenized-data cache in a temporary folder, never the user's home."""
    os.environ["TUNESMITH_CACHE_DIR"] = str(tmp_path_factory.mktemp("tokenized-cache"))


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


def _build(models_dir: Path, family: str) -> Path:
    from tunesmith.model.tiny import build_tiny_model

    out = models_dir / family
    if not (out / "config.json").exists():
        texts = [json.dumps(r, ensure_ascii=False) for r in ARITH + SHAREGPT + MINIMIND + PT_TEXTS]
        build_tiny_model(out, family, vocab_size=512, hidden_size=64, num_layers=4, num_heads=4, num_kv_heads=2,
                         intermediate_size=128, seed=0, extra_corpus=tuple(texts))
    return out


@pytest.fixture(scope="session")
def qwen2_model(models_dir) -> Path:
    return _build(models_dir, "qwen2")


@pytest.fixture(scope="session")
def qwen2_untied_model(models_dir) -> Path:
    return _build(models_dir, "qwen2-untied")


@pytest.fixture(scope="session")
def llama3_model(models_dir) -> Path:
    return _build(models_dir, "llama3")


def _build_vl(models_dir: Path, family: str) -> Path:
    from tunesmith.model.tiny_vl import build_tiny_vl_model

    out = models_dir / family
    if not (out / "config.json").exists():
        build_tiny_vl_model(family, out, seed=0)
    return out


@pytest.fixture(scope="session")
def qwen2_vl_model(models_dir) -> Path:
    """A tiny Qwen2-VL model with its processor files (model/tiny_vl.py)."""
    return _build_vl(models_dir, "qwen2_vl")


@pytest.fixture(scope="session")
def qwen2_5_vl_model(models_dir) -> Path:
    """A tiny Qwen2.5-VL model with its processor files."""
    return _build_vl(models_dir, "qwen2_5_vl")


@pytest.fixture(scope="session")
def qwen3_vl_model(models_dir) -> Path:
    """A tiny Qwen3-VL model with its processor files."""
    return _build_vl(models_dir, "qwen3_vl")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A LLaMA-Factory-style data folder: dataset_info.json plus small files."""
    root = tmp_path_factory.mktemp("data")
    (root / "arith.json").write_text(json.dumps(ARITH), encoding="utf-8")
    (root / "chat.json").write_text(json.dumps(SHAREGPT), encoding="utf-8")
    (root / "minimind.jsonl").write_text("".join(json.dumps(r) + "\n" for r in MINIMIND), encoding="utf-8")
    (root / "pt.jsonl").write_text("".join(json.dumps(r) + "\n" for r in PT_TEXTS), encoding="utf-8")
    (root / "pairs.json").write_text(json.dumps(PAIRS), encoding="utf-8")
    (root / "pairs_alpaca.json").write_text(json.dumps(PAIRS_ALPACA), encoding="utf-8")
    (root / "feedback.json").write_text(json.dumps(FEEDBACK), encoding="utf-8")
    (root / "dpo_en_demo.json").write_text(json.dumps(PAIRS), encoding="utf-8")
    (root / "kto_en_demo.json").write_text(json.dumps(FEEDBACK), encoding="utf-8")
    info = {
        "arith": {"file_name": "arith.json"},
        "chat": {"file_name": "chat.json", "formatting": "sharegpt", "columns": {"messages": "conversations",
                                                                                  "system": "system"}},
        "minimind": {"file_name": "minimind.jsonl", "formatting": "sharegpt"},
        "pt": {"file_name": "pt.jsonl", "columns": {"prompt": "text"}},
        "remote": {"hf_hub_url": "someone/some-data"},
        "pairs": {"file_name": "pairs.json", "ranking": True, "formatting": "sharegpt",
                  "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}},
        "pairs_alpaca": {"file_name": "pairs_alpaca.json", "ranking": True,
                         "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen",
                                     "rejected": "rejected"}},
        "feedback": {"file_name": "feedback.json", "formatting": "sharegpt",
                     "columns": {"messages": "messages", "kto_tag": "label"},
                     "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                              "assistant_tag": "assistant"}},
        # LLaMA-Factory's own registry entries for its demo sets, verbatim
        "dpo_en_demo": {"file_name": "dpo_en_demo.json", "ranking": True, "formatting": "sharegpt",
                        "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}},
        "kto_en_demo": {"file_name": "kto_en_demo.json", "formatting": "sharegpt",
                        "columns": {"messages": "messages", "kto_tag": "label"},
                        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                                 "assistant_tag": "assistant"}},
    }
    (root / "dataset_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return root


@pytest.fixture()
def train_config(tmp_path, data_dir):
    """Build a tunesmith Config from keyword overrides on top of small, fast defaults."""
    from tunesmith.config.load import build_config

    def make(model: Path, **overrides):
        raw = {
            "model_name_or_path": str(model), "stage": "sft", "do_train": True, "finetuning_type": "full",
            "dataset": "arith", "dataset_dir": str(data_dir), "template": "qwen3_nothink", "cutoff_len": 128,
            "output_dir": str(tmp_path / "out"), "overwrite_output_dir": True, "per_device_train_batch_size": 4,
            "learning_rate": 1e-2, "max_steps": 12, "logging_steps": 1, "save_strategy": "no",
            "report_to": "none", "seed": 0, "disable_tqdm": True, "lr_scheduler_type": "constant",
        }
        raw.update(overrides)
        return build_config({k: (v, "test") for k, v in raw.items()})

    return make


def _train_lora(root: Path, model: Path, data_dir: Path, **extra) -> Path:
    from tunesmith.config.load import build_config
    from tunesmith.train.run import run_training

    raw = {"model_name_or_path": str(model), "stage": "sft", "do_train": True, "finetuning_type": "lora",
           "dataset": "arith,chat", "dataset_dir": str(data_dir), "template": "qwen3_nothink", "cutoff_len": 128,
           "output_dir": str(root), "overwrite_output_dir": True, "per_device_train_batch_size": 4,
           "learning_rate": 2e-2, "max_steps": 6, "logging_steps": 3, "save_strategy": "no", "report_to": "none",
           "seed": 0, "disable_tqdm": True, "lr_scheduler_type": "constant", "lora_rank": 4, **extra}
    run_training(build_config({k: (v, "test") for k, v in raw.items()}))
    return root


@pytest.fixture(scope="session")
def lora_run(tmp_path_factory, qwen2_model, data_dir) -> Path:
    """A tiny trained LoRA output dir (no added tokens), shared by the chat, api and export tests."""
    return _train_lora(tmp_path_factory.mktemp("runs") / "lora", qwen2_model, data_dir)


@pytest.fixture(scope="session")
def lora_tokens_run(tmp_path_factory, qwen2_untied_model, data_dir) -> Path:
    """A tiny trained LoRA output dir with an added special token (resized, untied embeddings in the adapter)."""
    return _train_lora(tmp_path_factory.mktemp("runs") / "lora-tokens", qwen2_untied_model, data_dir,
                       add_special_tokens="<tool>")


class HubCache:
    """A Hugging Face cache laid out as huggingface_hub writes it: <hub>/models--org--name (or datasets--...)
    with blobs/<sha256>, snapshots/<commit>/<file> linking to its blob, and refs/<revision> naming the commit."""

    def __init__(self, home: Path) -> None:
        self.home, self.hub = home, home / "hub"

    def add(self, repo_id: str, files: dict, repo_type: str = "model", revision: str = "main",
            commit: str | None = None) -> Path:
        """Lay out ``files`` ({path in repo: bytes, str, or a Path to copy}) as ``repo_id`` at ``revision``."""
        import hashlib

        commit = commit or hashlib.sha1(f"{repo_type}:{repo_id}@{revision}".encode()).hexdigest()
        repo = self.hub / f"{repo_type}s--{repo_id.replace('/', '--')}"
        snapshot = repo / "snapshots" / commit
        for name, content in files.items():
            data = (content.read_bytes() if isinstance(content, Path)
                    else content.encode() if isinstance(content, str) else content)
            blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_bytes(data)
            target = snapshot / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(os.path.relpath(blob, target.parent))
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / revision).write_text(commit)
        return snapshot

    def add_model(self, repo_id: str, model_dir: Path, **kwargs) -> Path:
        """A local model folder (e.g. a tiny model fixture) as hub repo ``repo_id``."""
        return self.add(repo_id, {p.relative_to(model_dir).as_posix(): p for p in sorted(model_dir.rglob("*"))
                                  if p.is_file()}, **kwargs)


@pytest.fixture()
def hf_cache(tmp_path, monkeypatch) -> HubCache:
    """An empty offline Hugging Face cache: HF_HOME (and HF_HUB_CACHE, HF_DATASETS_CACHE) in a temporary folder,
    HF_HUB_OFFLINE=1. huggingface_hub and datasets read these variables when imported, so their paths in this
    process are pointed there too."""
    import datasets.config
    from huggingface_hub import constants

    home = tmp_path / "hf-home"
    home.mkdir()
    for name, value in (("HF_HOME", home), ("HF_HUB_CACHE", home / "hub"), ("HF_DATASETS_CACHE", home / "datasets"),
                        ("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1")):
        monkeypatch.setenv(name, str(value))
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", home / "datasets")
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", home / "datasets" / "downloads")
    monkeypatch.setattr(datasets.config, "EXTRACTED_DATASETS_PATH", home / "datasets" / "downloads" / "extracted")
    return HubCache(home)


@pytest.fixture()
def hub_unreachable(hf_cache, monkeypatch) -> HubCache:
    """``hf_cache``, but online (no offline variable) with the hub at an address that refuses connections: the
    "no network" case, without a network."""
    from huggingface_hub import constants

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    return hf_cache


@contextlib.contextmanager
def scoring_endpoint(score):
    """A local reward endpoint in the wire format of `reward_model_type: api`: each rendered text's reply (after
    the last ChatML assistant header) is scored by ``score(reply) -> float``. Yields its URL."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            replies = [text.split("<|im_start|>assistant\n")[-1] for text in body["messages"]]
            data = json.dumps({"scores": [float(score(reply)) for reply in replies]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/score"
    finally:
        server.shutdown()


@pytest.fixture(scope="session")
def score_server():
    """``with score_server(score) as url``: a local reward endpoint (see scoring_endpoint)."""
    return scoring_endpoint


# Several-process runs (tests/e2e/test_distributed*.py, tests/gpu/): the same training keys in this process (one
# process) or under torchrun (several processes of one gloo or NCCL group), each returning the logged steps.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def logged_steps(output_dir) -> list[dict]:
    lines = (Path(output_dir) / "trainer_log.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if '"loss"' in line]


def process_env(**extra) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **extra}


def write_config(keys: dict) -> Path:
    path = Path(keys["output_dir"]).with_suffix(".yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    import yaml

    path.write_text(yaml.safe_dump(keys))
    return path


def check(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, (done.stdout or "")[-2000:] + (done.stderr or "")[-4000:]


@pytest.fixture()
def run_keys(data_dir, qwen2_model):
    """Small sft keys on the tiny Qwen2 model; overrides by keyword."""

    def make(out: Path, **keys) -> dict:
        return {"model_name_or_path": str(qwen2_model), "stage": "sft", "do_train": True, "finetuning_type": "full",
                "dataset": "arith", "dataset_dir": str(data_dir), "template": "qwen3_nothink", "cutoff_len": 128,
                "output_dir": str(out), "overwrite_output_dir": True, "learning_rate": 1e-3, "max_steps": 3,
                "logging_steps": 1, "save_strategy": "no", "report_to": "none", "seed": 0, "disable_tqdm": True,
                **keys}

    return make


def in_process(keys: dict, callbacks: list | None = None) -> list[dict]:
    """One process, no launcher: the reference the several-process runs are compared with."""
    from tunesmith.config.load import build_config
    from tunesmith.train.run import run_training

    run_training(build_config({k: (v, "test") for k, v in keys.items()}), extra_callbacks=callbacks)
    return logged_steps(keys["output_dir"])


def torchrun(keys: dict, processes: int, script: Path | None = None, timeout: int = 300, **env) -> list[dict]:
    """``processes`` processes on this machine under torchrun's loopback rendezvous, running `tunesmith train`
    (or ``script`` with the config's path)."""
    target = [str(script)] if script else ["-m", "tunesmith.cli", "train"]
    # --standalone: torchrun binds a free port itself (a port picked here could be taken before torchrun binds it)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes),
           *target, str(write_config(keys))]
    check(subprocess.run(cmd, capture_output=True, text=True, env=process_env(**env), timeout=timeout))
    return logged_steps(keys["output_dir"])


def assert_same_steps(one: list[dict], many: list[dict], keys=("loss",), rel: float = 1e-5) -> None:
    assert [r["current_steps"] for r in many] == [r["current_steps"] for r in one]  # each step logged once
    for a, b in zip(one, many):
        for key in keys:
            assert b[key] == pytest.approx(a[key], rel=rel), (key, a["current_steps"])


@pytest.fixture()
def dist():
    """The helpers above, for the tests (conftest modules are not imported by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(in_process=in_process, torchrun=torchrun, same=assert_same_steps, free_port=free_port,
                           env=process_env, write_config=write_config, logged=logged_steps, check=check)
