"""`tunesmith export`: merge LoRA adapters into the base (after replaying the token resize) and write a
plain transformers model: safetensors shards, the tokenizer with the training template as its Jinja
chat_template, and a generation config that stops at the template's end-of-turn tokens.

Everything is written to a temporary folder beside export_dir and renamed into place at the end, so a
failed export leaves nothing half-written. An export_dir holding an earlier tunesmith export (its run card
says `exported_from`) is replaced, with one log line; any other non-empty folder only with
`overwrite_export_dir: true`. An Ollama `Modelfile` is written next to the model (infer/ollama.py).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from .. import __version__
from ..config.errors import ConfigError
from ..config.schema import Config
from ..templates.jinja import to_jinja
from ..templates.stops import stop_token_ids
from .load import build_model, checkpoint_dtype, load_tokenizer_and_template
from .ollama import modelfile
from .source import RUN_CARD, describe, resolve_source

logger = logging.getLogger(__name__)


def check_target(cfg: Config, inputs: list[str]) -> Path:
    target = Path(cfg.export.export_dir)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"`export_dir`: {target} exists and is not a directory")
    resolved = target.resolve()
    for path in inputs:
        if Path(path).exists() and Path(path).resolve() == resolved:
            raise ConfigError(f"`export_dir`: {target} is also an input ({path}); export to another folder")
    if target.is_dir() and any(target.iterdir()) and not cfg.export.overwrite_export_dir:
        if earlier_export(target):
            logger.info("%s holds an earlier tunesmith export: it is replaced once the new one is written", target)
            return target
        raise ConfigError(f"`export_dir`: {target} exists and is not empty; set `overwrite_export_dir: true` to "
                          "replace it, or choose another `export_dir`")
    return target


def earlier_export(folder: Path) -> bool:
    """Whether a folder is a tunesmith export (its run card records where it was exported from)."""
    try:
        card = json.loads((folder / RUN_CARD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(card, dict) and "exported_from" in card


def export_dtype(cfg: Config, base: str):
    import torch

    if cfg.infer.infer_dtype != "auto":
        return getattr(torch, cfg.infer.infer_dtype)
    stored = checkpoint_dtype(base)
    return stored if stored in (torch.float16, torch.bfloat16, torch.float32) else torch.float32


def export_model(cfg: Config) -> Path:
    import torch

    source = resolve_source(cfg)
    target = check_target(cfg, [source.base, *source.adapters, source.tokenizer_dir])
    logger.info("Exporting %s to %s", describe(source), target)
    tokenizer, template, default_system = load_tokenizer_and_template(cfg, source)
    device = "cuda" if cfg.export.export_device == "auto" and torch.cuda.is_available() else "cpu"
    model = build_model(cfg, source, tokenizer, export_dtype(cfg, source.base), device)
    stop_ids = stop_token_ids(tokenizer, template)

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        model.save_pretrained(tmp, max_shard_size=int(cfg.export.export_size * 10**9))
        tokenizer.chat_template = to_jinja(template)
        tokenizer.save_pretrained(tmp)
        write_generation_config(model, tokenizer, stop_ids, tmp)
        write_export_card(cfg, source, template, default_system, model, tmp)
        (tmp / "Modelfile").write_text(modelfile(template, tokenizer, stop_ids, default_system), encoding="utf-8")
        _usual_permissions(tmp)
        _swap_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("Exported to %s", target)
    return target


def write_generation_config(model, tokenizer, stop_ids: list[int], out: Path) -> None:
    """The base's generation settings, with eos = every stop token of the template."""
    from transformers import GenerationConfig

    config = GenerationConfig.from_dict(model.generation_config.to_dict()) if model.generation_config else \
        GenerationConfig()
    config.eos_token_id = list(stop_ids)
    config.pad_token_id = tokenizer.pad_token_id
    if tokenizer.bos_token_id is not None:
        config.bos_token_id = tokenizer.bos_token_id
    config.save_pretrained(out)


def write_export_card(cfg: Config, source, template, default_system, model, out: Path) -> None:
    """A run card so `tunesmith chat|api export_dir` finds the template and its options."""
    own = bool(cfg.data.template)
    data = {"template": source.template, "enable_thinking": getattr(template, "enable_thinking", None),
            "tool_format": getattr(template, "tool_format", None) if own else source.data.get("tool_format"),
            "default_system": default_system}
    card = {
        "tunesmith_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "finetuning_type": "merged" if source.adapters else "full",
        "base_model": source.base,
        "adapters_merged": list(source.adapters),
        "is_adapter": False,
        "template": source.template,
        "added_tokens": (source.card or {}).get("added_tokens", {}),
        "embedding_rows": model.get_input_embeddings().weight.shape[0],
        "exported_from": describe(source),
        "config": {"data": data},
    }
    (out / RUN_CARD).write_text(json.dumps(card, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def _usual_permissions(folder: Path) -> None:
    """Temporary folders and files are private (0700/0600); an export is readable like any saved model."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for file in folder.rglob("*"):
        file.chmod((0o777 if file.is_dir() else 0o666) & ~umask)


def _swap_into_place(tmp: Path, target: Path) -> None:
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    if not target.exists():
        os.replace(tmp, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    old.rmdir()
    os.replace(target, old)  # overwrite_export_dir: the old export goes only once the new one is in place
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
