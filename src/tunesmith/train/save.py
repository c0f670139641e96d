"""What a finished run leaves in output_dir besides the weights: tunesmith.json, the run's card."""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import asdict
from pathlib import Path

from .. import __version__
from ..config.rules_methods import ADAPTER_TYPES
from ..config.schema import Config
from ..utils.run_card import RUN_CARD



def write_run_card(cfg: Config, output_dir: str | Path, **facts) -> Path:
    """Describe the run so chat/api/export need only the output dir."""
    model_path = cfg.model.model_name_or_path
    card = {
        "tunesmith_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "stage": cfg.stage,
        "finetuning_type": cfg.finetuning.finetuning_type,
        "base_model": str(Path(model_path).resolve()) if Path(model_path).exists() else model_path,
        "adapters_merged_before_training": list(cfg.model.adapter_name_or_path),
        "is_adapter": cfg.finetuning.finetuning_type in ADAPTER_TYPES,
        "template": cfg.data.template,
        "cutoff_len": cfg.data.cutoff_len,
        "datasets": list(cfg.data.dataset),
        "config": {"model": asdict(cfg.model), "data": asdict(cfg.data), "finetuning": asdict(cfg.finetuning),
                   "training": cfg.training},
        **facts,
    }
    path = Path(output_dir) / RUN_CARD
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(card, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path

