"""The Hugging Face Hub, shared by the model and the data loaders: what names a hub repo and what a local path,
whether downloads are off, which failure means "the hub cannot be reached", and the download command to suggest.

The rule for `model_name_or_path` (and anything else that may be a hub id):

* an existing file or folder is always local;
* a name that starts with ``/``, ``~`` or ``.`` (``./x``, ``../x``), holds a backslash or a drive letter
  (``C:``), has two or more ``/`` or ends with ``/`` is a local path, never looked up on the hub;
* so is a name not shaped like a hub repo id (``name`` or ``org/name``: letters, digits, ``-``, ``_``, ``.``);
* everything else (``Qwen/Qwen3-0.6B``, ``gpt2``) is a hub repo id. When such an id is found neither on the hub
  nor in the local cache and its first part is a folder that exists here (``models/qwen`` with a ``models``
  folder), the error reads it as a mistyped local path first.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_TRUE = ("1", "true", "yes", "y", "on")
# huggingface_hub's own repo id pattern (validate_repo_id), plus its "--" / ".." exclusions below.
_REPO_ID = re.compile(r"^(\b[\w\-.]+\b/)?\b[\w\-.]{1,96}\b$")
MODEL_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
DATASET_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
# Class names (anywhere in an exception's MRO or cause chain) that mean the network, not the request, failed.
_NETWORK_ERRORS = {"ConnectionError", "TimeoutError", "OfflineModeIsEnabled", "ConnectError", "ConnectTimeout",
                   "NetworkError", "TimeoutException", "TransportError", "ReadTimeout", "ProxyError"}


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def use_modelscope() -> bool:
    """LLaMA-Factory's switch: `USE_MODELSCOPE_HUB=1` fetches hub models and datasets from ModelScope."""
    return env_flag("USE_MODELSCOPE_HUB")


def use_openmind() -> bool:
    return env_flag("USE_OPENMIND_HUB")


def is_offline(variables: tuple[str, ...] = MODEL_OFFLINE_VARS) -> bool:
    """Downloads are off: one of ``variables`` is set now, or huggingface_hub saw HF_HUB_OFFLINE when imported."""
    if any(env_flag(name) for name in variables):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.is_offline_mode())


def offline_variable(variables: tuple[str, ...] = MODEL_OFFLINE_VARS) -> str:
    """The variable that turned downloads off, for messages."""
    return next((f"{name}={os.environ[name]}" for name in variables if env_flag(name)), "HF_HUB_OFFLINE=1")


def looks_like_repo_id(name: str) -> bool:
    return bool(_REPO_ID.match(name)) and "--" not in name and ".." not in name


def is_local_path(name: str) -> bool:
    """True when ``name`` is a local path by the rule in this module's docstring (never a hub id)."""
    if Path(name).expanduser().exists():
        return True
    if name.startswith(("/", "~", ".")) or "\\" in name or re.match(r"^[A-Za-z]:", name):
        return True
    if name.endswith("/") or name.count("/") > 1:
        return True
    return not looks_like_repo_id(name)


def existing_parent(name: str) -> Path | None:
    """The first part of ``org/name`` when it is a folder that exists here (so the name was likely a path)."""
    if name.count("/") != 1:
        return None
    parent = Path(name.split("/", 1)[0])
    return parent if parent.is_dir() else None


def is_unreachable(err: BaseException) -> bool:
    """The hub could not be reached (no network, refused, timed out, or offline mode), as opposed to an answer."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if any(cls.__name__ in _NETWORK_ERRORS for cls in type(err).__mro__):
            return True
        err = err.__cause__ or err.__context__
    return False


def hub_cache(cache_dir: str | None = None) -> str:
    """The hub cache a lookup uses: ``cache_dir``, else huggingface_hub's (HF_HUB_CACHE, or HF_HOME/hub)."""
    if cache_dir:
        return str(cache_dir)
    try:
        from huggingface_hub import constants
    except ImportError:
        return "~/.cache/huggingface/hub"
    return str(constants.HF_HUB_CACHE)


def cached_snapshot(repo_id: str, repo_type: str = "model", cache_dir: str | None = None,
                    revision: str | None = None, token: str | None = None) -> str | None:
    """The folder of ``repo_id`` at ``revision`` (branch, tag or commit; default main) in the local hub cache,
    or None. Never touches the network."""
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id, repo_type=repo_type, cache_dir=cache_dir, revision=revision, token=token,
                                 local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means "not in the local cache"
        return None


def download_command(repo_id: str, repo_type: str = "model", revision: str | None = None,
                     local_dir: str | None = None) -> str:
    """`hf download ...` for a repo (huggingface_hub's CLI; `huggingface-cli download` takes the same arguments)."""
    parts = ["hf download", repo_id]
    if repo_type != "model":
        parts.append(f"--repo-type {repo_type}")
    if revision not in (None, "main"):
        parts.append(f"--revision {revision}")
    if local_dir:
        parts.append(f"--local-dir {local_dir}")
    return " ".join(parts)
