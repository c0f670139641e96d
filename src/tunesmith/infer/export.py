"""`tunesmith export`: merge LoRA adapters into the base (after replaying the token resize) and write a
plain transformers model: safetensors shards, the tokenizer with the training template as its Jinja
chat_template, and a generation config that stops at the template's end-of-turn tokens.

Everything is written to a temporary folder beside export_dir and renamed into place at the end, so a
failed export leaves nothing half-written. An export_dir holding an earlier tunesmith export (its run card
says `exported_from`) is replaced, with one log line; any other non-empty folder only with
`overwrite_export_dir: true`. An Ollama `Modelfile` is written next to the model (infer/ollama.py).

A vision-language model is exported with its processor settings (preprocessor_config.json, and
video_preprocessor_config.json / processor_config.json where the model has them) beside the tokenizer, whose chat
template is the training template, so plain transformers' AutoModelForImageTextToText and tunesmith's processor
load the folder.
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
from ..model.processor import copy_processor_files
from .vision import processor_dir

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
    processor_files = processor_dir(source)  # a vision-language model's processor settings (None: a text model)
    if processor_files is not None and cfg.export.export_quantization_bit is not None:
        raise ConfigError("`export_quantization_bit` (GPTQ) quantizes causal language models; a vision-language model "
                          "is exported unquantized: export without it")
    check_export_quantization(cfg)
    target = check_target(cfg, [source.base, *source.adapters, source.tokenizer_dir])
    logger.info("Exporting %s to %s", describe(source), target)
    tokenizer, template, default_system = load_tokenizer_and_template(cfg, source)
    device = "cuda" if cfg.export.export_device == "auto" and torch.cuda.is_available() else "cpu"
    model = build_model(cfg, source, tokenizer, export_dtype(cfg, source.base), device, merge=True)
    stop_ids = stop_token_ids(tokenizer, template)

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        model.save_pretrained(tmp, max_shard_size=int(cfg.export.export_size * 10**9))
        if cfg.export.export_quantization_bit is not None:
            gptq_quantize(cfg, tmp, tokenizer)
        tokenizer.chat_template = to_jinja(template)
        tokenizer.save_pretrained(tmp)
        if processor_files is not None:
            copy_processor_files(Path(processor_files), tmp)
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


GPTQ_PACKAGES = (("optimum", "optimum"), ("gptqmodel", "gptqmodel"))


def check_export_quantization(cfg: Config) -> None:
    """`export_quantization_bit` quantizes the merged model with GPTQ (transformers' GPTQConfig through optimum
    and gptqmodel); without them, a clear refusal before anything loads."""
    import importlib.util

    if cfg.export.export_quantization_bit is None:
        return
    missing = [pip for module, pip in GPTQ_PACKAGES if importlib.util.find_spec(module) is None]
    if missing:
        raise ConfigError(f"`export_quantization_bit` quantizes the export with GPTQ, which needs "
                          f"{' and '.join(missing)} (`pip install {' '.join(missing)}`; gptqmodel builds its kernels "
                          "at install time, against CUDA when there is a GPU); or export without "
                          "`export_quantization_bit` and quantize the exported folder with another tool")


def calibration_samples(cfg: Config, tokenizer) -> list[str]:
    """`export_quantization_nsamples` texts of the calibration dataset (a local text/json/jsonl/csv/parquet file or
    a hub dataset with a `text` column), as GPTQConfig takes them."""
    from datasets import load_dataset

    name = cfg.export.export_quantization_dataset
    path = Path(name)
    try:
        if path.is_file():
            kind = {"txt": "text", "jsonl": "json"}.get(path.suffix.lstrip("."), path.suffix.lstrip("."))
            data = load_dataset(kind, data_files=str(path), split="train")
        else:
            data = load_dataset(name, split="train", cache_dir=cfg.model.cache_dir, token=cfg.model.hf_hub_token)
    except Exception as err:  # noqa: BLE001 - datasets raises many kinds
        raise ConfigError(f"`export_quantization_dataset`: cannot read {name}: {type(err).__name__}: {err}") from None
    if "text" not in data.column_names:
        raise ConfigError(f"`export_quantization_dataset`: {name} has no `text` column (columns: "
                          f"{', '.join(data.column_names)})")
    texts = [t for t in data["text"] if isinstance(t, str) and t.strip()]
    if not texts:
        raise ConfigError(f"`export_quantization_dataset`: {name} holds no text")
    maxlen = cfg.export.export_quantization_maxlen
    out = []
    for i in range(cfg.export.export_quantization_nsamples):
        ids = tokenizer(texts[i % len(texts)], add_special_tokens=False)["input_ids"][:maxlen]
        out.append(tokenizer.decode(ids))
    return out


def gptq_quantize(cfg: Config, folder: Path, tokenizer) -> None:
    """Re-load the merged model written to ``folder`` through GPTQConfig (calibrating on the dataset) and write
    the quantized model over it."""
    import torch
    from transformers import AutoModelForCausalLM, GPTQConfig

    bits = cfg.export.export_quantization_bit
    logger.info("Quantizing the merged model to %d bit with GPTQ on %d calibration samples", bits,
                cfg.export.export_quantization_nsamples)
    config = GPTQConfig(bits=bits, tokenizer=tokenizer, dataset=calibration_samples(cfg, tokenizer))
    device_map = "auto" if torch.cuda.is_available() else {"": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=config, device_map=device_map,
                                                 dtype=torch.float16, local_files_only=True)
    for file in folder.glob("*.safetensors*"):
        file.unlink()
    model.save_pretrained(folder, max_shard_size=int(cfg.export.export_size * 10**9))


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
