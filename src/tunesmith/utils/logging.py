"""Log setup: tunesmith's own lines at INFO ("2026-11-24 10:00:00 - INFO - ..."), libraries quieter."""

from __future__ import annotations

import logging
import os
import sys
import warnings

FORMAT = "%(asctime)s - %(levelname)s - %(message)s"


class TunesmithHandler(logging.StreamHandler):
    """The handler setup_logging installs (once). It writes to whatever sys.stderr is when a line is logged,
    not to the stream of the moment it was made (which may have been replaced and closed since)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(level: int = logging.INFO) -> None:
    root = logging.getLogger("tunesmith")
    if not any(isinstance(h, TunesmithHandler) for h in root.handlers):
        handler = TunesmithHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(level)
    root.propagate = True


def offline_environment() -> None:
    """Quiet library chatter that is noise for a fine-tuning run.

    The name is historical: hub traffic is no longer turned off here. A hub model id or `hf_hub_url` dataset
    downloads when online; HF_HUB_OFFLINE=1 (tests and quickstart.sh set it) keeps every run on the local cache."""
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    # peft still calls a transformers method that transformers 5 deprecated; nothing a user can act on.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    # peft imports bitsandbytes whenever it is installed; on a CPU with AVX512-BF16 bitsandbytes then tries to
    # fetch an optional 4-bit kernel from the hub and warns when it cannot: its own fallback kernel serves.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
