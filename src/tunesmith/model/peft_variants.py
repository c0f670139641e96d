"""PEFT variants through peft, with LLaMA-Factory's keys: the adapter config of `finetuning_type: lora` (DoRA,
rsLoRA, PiSSA initialisation) and `finetuning_type: oft`, LLaMA Pro's choice of the inserted blocks, and the
PiSSA-to-LoRA conversion of a trained adapter.

PiSSA puts the principal singular components of each target weight into the adapter (A, B) and leaves the
residual in the base weight, so the model's output starts unchanged; the trained adapter then belongs to the
residual base. `pissa_convert` saves it also as a plain LoRA adapter (twice the rank) that applies to the
original base model (peft's `path_initial_model_for_weight_conversion`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..config.errors import ConfigError
from ..config.schema import FinetuningArgs

logger = logging.getLogger(__name__)

PISSA_INIT_DIR = "pissa_init"  # LLaMA-Factory's folder names inside output_dir
PISSA_CONVERTED_DIR = "pissa_converted"
PISSA_BACKUP_DIR = "pissa_backup"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def pissa_init_value(args: FinetuningArgs) -> str | bool:
    """peft's init_lora_weights: pissa (exact SVD, pissa_iter -1), pissa_niter_N (fast SVD), or True."""
    if not args.pissa_init:
        return True
    return "pissa" if args.pissa_iter == -1 else f"pissa_niter_{args.pissa_iter}"


def adapter_config(args: FinetuningArgs, targets: list[str], modules_to_save: list[str] | None, task_type,
                   tie_embeddings: bool):
    """The peft config of a new adapter: LoraConfig (lora) or OFTConfig (oft)."""
    from peft import LoraConfig, OFTConfig

    if args.finetuning_type == "oft":
        return OFTConfig(task_type=task_type, r=args.oft_rank, oft_block_size=args.oft_block_size,
                         target_modules=targets, module_dropout=args.module_dropout, modules_to_save=modules_to_save)
    return LoraConfig(
        task_type=task_type,
        r=args.lora_rank,
        lora_alpha=args.lora_alpha if args.lora_alpha is not None else args.lora_rank * 2,
        lora_dropout=args.lora_dropout,
        target_modules=targets,
        modules_to_save=modules_to_save,
        ensure_weight_tying=tie_embeddings,  # a tied head trains together with the input embedding
        use_rslora=args.use_rslora,
        use_dora=args.use_dora,
        init_lora_weights=pissa_init_value(args),
    )


def describe(args: FinetuningArgs, config) -> str:
    if args.finetuning_type == "oft":
        size = f"block size {config.oft_block_size}" if config.oft_block_size else f"{config.r} blocks"
        return f"oft: {size}, module dropout {config.module_dropout:g}"
    kind = "dora" if args.use_dora else "lora"
    extra = [name for name, on in (("rslora", args.use_rslora),
                                   (f"pissa init ({pissa_init_value(args)})", args.pissa_init)) if on]
    return f"{kind}: rank {config.r}, alpha {config.lora_alpha}" + "".join(f", {e}" for e in extra)


# -- LLaMA Pro ------------------------------------------------------------------------------------------------------

def llama_pro_layer_ids(n_layers: int, num_expand: int) -> list[int]:
    """The blocks `tunesmith llama-pro` inserted into a model that has ``n_layers`` layers now: the last of each of
    the ``num_expand`` groups (LLaMA-Factory's stride rule)."""
    if num_expand <= 0 or n_layers % num_expand:
        raise ConfigError(f"`use_llama_pro`: the model's {n_layers} layers are not a multiple of "
                          f"`freeze_trainable_layers` {num_expand} (the number of inserted blocks); give the "
                          "`num_expand` the model was expanded with")
    stride = n_layers // num_expand
    return list(range(stride - 1, n_layers, stride))


def llama_pro_targets(model, layers_prefix: str, n_layers: int, num_expand: int, targets: list[str]) -> list[str]:
    """Full names of the target modules inside the inserted blocks (an adapter on those blocks only)."""
    import torch

    ids = llama_pro_layer_ids(n_layers, num_expand)
    inside = tuple(f"{layers_prefix}.{i}." for i in ids)
    names = [name for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and name.startswith(inside)
             and name.split(".")[-1] in targets]
    if not names:
        raise ConfigError(f"`use_llama_pro`: none of the targets {', '.join(targets)} is in the inserted blocks "
                          f"{ids}")
    logger.info("llama pro: adapters on the %d target modules of the inserted blocks %s", len(names), ids)
    return names


# -- PiSSA conversion -----------------------------------------------------------------------------------------------

def pissa_start(cfg, model, resume: str | None, should_save: bool) -> None:
    """With `pissa_convert`: save the initial adapter before the first step (a resumed run keeps the one its
    first start saved)."""
    if not cfg.finetuning.pissa_convert:
        return
    initial = Path(cfg.output_dir) / PISSA_INIT_DIR
    if resume is not None:
        if not (initial / "adapter_config.json").is_file():
            raise ConfigError(f"`pissa_convert`: {initial} is missing, so the resumed run cannot convert its adapter; "
                              "start afresh (overwrite_output_dir: true)")
        return
    if should_save:
        save_pissa_initial(model, cfg.output_dir)


def save_pissa_initial(model, output_dir: str | Path) -> Path:
    """Save the adapter as it starts (before training): the reference the conversion subtracts."""
    path = Path(output_dir) / PISSA_INIT_DIR
    config = model.peft_config["default"]
    init = config.init_lora_weights
    config.init_lora_weights = True  # loading it back must not run the SVD again
    try:
        model.save_pretrained(str(path))
    finally:
        config.init_lora_weights = init
    logger.info("pissa_convert: the initial PiSSA adapter is saved in %s", path)
    return path


def save_pissa_converted(model, output_dir: str | Path) -> Path:
    """After training: the trained PiSSA adapter as it is (for the residual base) in pissa_backup, converted to a
    plain LoRA adapter of twice the rank for the original base in pissa_converted (LLaMA-Factory's folders),
    and the converted one also as output_dir's adapter, so chat, api, export and further training from output_dir
    apply it to the original base model."""
    import shutil

    out = Path(output_dir)
    model.save_pretrained(str(out / PISSA_BACKUP_DIR))
    model.save_pretrained(str(out / PISSA_CONVERTED_DIR),
                          path_initial_model_for_weight_conversion=str(out / PISSA_INIT_DIR))
    for name in ADAPTER_FILES:
        if (out / PISSA_CONVERTED_DIR / name).is_file():
            shutil.copyfile(out / PISSA_CONVERTED_DIR / name, out / name)
    logger.info("pissa_convert: %s holds the adapter converted to LoRA for the original base model (also in %s); "
                "the unconverted one is in %s", out, PISSA_CONVERTED_DIR, PISSA_BACKUP_DIR)
    return out / PISSA_CONVERTED_DIR


def refuse_residual_adapter(path: str | Path) -> None:
    """An unconverted PiSSA adapter from the fast SVD (`pissa_iter` >= 0) is refused: loading it, peft splits the
    base weights again with a new random sketch, so the residual differs from the one it was trained on and the
    outputs are wrong. (With the exact SVD, `pissa_iter: -1`, peft recomputes the same residual: it loads.)"""
    import json

    config = Path(path) / "adapter_config.json"
    init = json.loads(config.read_text(encoding="utf-8")).get("init_lora_weights") if config.is_file() else None
    if isinstance(init, str) and init.startswith("pissa_niter"):
        converted = next((p for p in (Path(path) / PISSA_CONVERTED_DIR, Path(path).parent / PISSA_CONVERTED_DIR)
                          if p.is_dir()), None)
        instead = (f"use {converted}, the same adapter converted for the original base" if converted else
                   "train with `pissa_convert: true`, which saves it converted for the original base")
        raise ConfigError(f"{path} holds a PiSSA adapter (init_lora_weights: {init}) trained on a residual of the "
                          "base weights that a fast randomised SVD chose; loaded again, peft would choose another "
                          f"residual and the outputs would be wrong: {instead}")


def adapter_kind(path: str | Path) -> str:
    """lora, dora, oft, ... as peft saved it in adapter_config.json."""
    import json

    config = json.loads((Path(path) / "adapter_config.json").read_text(encoding="utf-8"))
    kind = str(config.get("peft_type", "LORA")).lower()
    return "dora" if kind == "lora" and config.get("use_dora") else kind
