"""Fine-tuning methods: which weights train. full | freeze (selected layers) | lora, oft (peft adapters; their
variants in model/peft_variants.py)."""

from __future__ import annotations

import logging

from ..config.errors import ConfigError
from ..config.schema import FinetuningArgs, ModelArgs
from ..config.schema_media import MediaArgs
from .peft_variants import adapter_config, describe, llama_pro_layer_ids, llama_pro_targets, refuse_residual_adapter
from .quantize import is_quantized_linear
from .vision import all_target_exclusions, freeze_parts, lora_module_names

logger = logging.getLogger(__name__)


def decoder_layers(model) -> tuple[str, int]:
    """Dotted name of the decoder's layer list and its length (e.g. ("model.layers", 24))."""
    import torch

    n_layers = getattr(model.config.get_text_config(), "num_hidden_layers", None)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n_layers and name.endswith("layers"):
            return name, len(module)
    raise ConfigError(f"cannot find the decoder layers of {type(model).__name__} for `finetuning_type: freeze`")


def select_freeze_layers(n_layers: int, trainable_layers: int) -> list[int]:
    """+N -> the last N layers, -N -> the first N (clamped to the model's depth)."""
    if trainable_layers > 0:
        return list(range(max(0, n_layers - trainable_layers), n_layers))
    return list(range(min(-trainable_layers, n_layers)))


def apply_full(model) -> None:
    for param in model.parameters():
        param.requires_grad_(True)


def apply_freeze(model, args: FinetuningArgs) -> list[str]:
    """Train the selected layers (all or named sub-modules) plus ``freeze_extra_modules``; freeze the rest."""
    prefix, n_layers = decoder_layers(model)
    if args.use_llama_pro:  # only the blocks `tunesmith llama-pro` inserted
        layer_ids = llama_pro_layer_ids(n_layers, args.freeze_trainable_layers)
    else:
        layer_ids = select_freeze_layers(n_layers, args.freeze_trainable_layers)
    modules = args.freeze_trainable_modules
    if "all" in modules:
        patterns = [f"{prefix}.{i}." for i in layer_ids]
    else:
        patterns = [f"{prefix}.{i}.{m}." for i in layer_ids for m in modules]
    names = [name for name, _ in model.named_parameters()]
    for module in modules:
        if module != "all" and not any(f".{module}." in n for n in names):
            raise ConfigError(f"`freeze_trainable_modules`: no module `{module}` in the decoder layers of "
                              f"{type(model).__name__}; try e.g. mlp, self_attn or all")
    extra = [f"{m}." for m in args.freeze_extra_modules]
    for module in args.freeze_extra_modules:
        if not any(n.startswith(module + ".") or f".{module}." in n for n in names):
            raise ConfigError(f"`freeze_extra_modules`: no module `{module}` in {type(model).__name__}")
    trainable = []
    for name, param in model.named_parameters():
        train = any(p in name for p in patterns) or any(name.startswith(e) or f".{e}" in name for e in extra)
        param.requires_grad_(train)
        if train:
            trainable.append(name)
    logger.info("freeze: training layers %s of %d (%s)%s", layer_ids, n_layers, ", ".join(modules),
                f" + {', '.join(args.freeze_extra_modules)}" if args.freeze_extra_modules else "")
    return trainable


def lora_target_modules(model, targets: tuple[str, ...], media: MediaArgs | None = None) -> list[str]:
    """`all` -> every linear layer name except the output head (and, on a vision-language model, the projector and
    the frozen vision tower); otherwise the names given. On a vision-language model the names become the full
    module names outside the parts the freeze_* switches keep frozen (model/vision.py)."""
    import torch

    media = media or MediaArgs()
    names = set(targets)
    if "all" in targets:
        output = model.get_output_embeddings()
        excluded = all_target_exclusions(model, media) or set()
        names = set()
        for name, module in model.named_modules():
            linear = isinstance(module, torch.nn.Linear) or is_quantized_linear(module)
            if linear and module is not output and name.split(".")[-1] not in HEADS and \
                    not any(key in name for key in excluded):
                names.add(name.split(".")[-1])
    full = lora_module_names(model, sorted(names), media)
    return sorted(names) if full is None else full


HEADS = ("score", "classifier", "v_head")  # task heads: trained in full, never given LoRA


def has_score_head(model) -> bool:
    """A sequence-classification (reward) model: its `score` head trains in full in every method."""
    import torch

    return isinstance(getattr(model, "score", None), torch.nn.Linear)


def embedding_module_names(model) -> list[str]:
    """Names (last component) of the input embedding and, when untied, the output head."""
    inp, out = model.get_input_embeddings(), model.get_output_embeddings()
    names = []
    for name, module in model.named_modules():
        if module is inp or (module is out and out.weight is not inp.weight):
            names.append(name.split(".")[-1])
    return names


def apply_lora(model, model_args: ModelArgs, args: FinetuningArgs, is_trainable: bool = True,
               train_embeddings: bool = False, media: MediaArgs | None = None):
    """Load adapters (all but the last merged; the last resumed) or create a new one (lora or oft)."""
    from peft import PeftModel, TaskType, get_peft_model

    adapters = list(model_args.adapter_name_or_path)
    resume = adapters[-1] if adapters and is_trainable and not args.create_new_adapter else None
    to_merge = adapters[:-1] if resume else adapters
    if not is_trainable:
        to_merge, resume = adapters, None
    for path in adapters:
        refuse_residual_adapter(path)
    for path in to_merge:
        model = PeftModel.from_pretrained(model, path).merge_and_unload()
        logger.info("merged adapter %s into the base weights", path)
    if resume:
        model = PeftModel.from_pretrained(model, resume, is_trainable=True)
        logger.info("resumed training of adapter %s", resume)
        return model
    if not is_trainable:
        return model
    targets = lora_target_modules(model, args.lora_target, media)
    if args.finetuning_type == "oft" and args.oft_target != args.lora_target:
        logger.warning("oft_target (%s) is not read, as in LLaMA-Factory: OFT adapts the modules of lora_target (%s)",
                       ",".join(args.oft_target), ",".join(args.lora_target))
    if args.use_llama_pro:
        targets = llama_pro_targets(model, *decoder_layers(model), args.freeze_trainable_layers, targets)
    embeddings = embedding_module_names(model) if train_embeddings else []
    tied = bool(getattr(model.config.get_text_config(), "tie_word_embeddings", False))
    config = adapter_config(args, targets, (list(args.additional_target) + embeddings) or None,
                            TaskType.SEQ_CLS if has_score_head(model) else TaskType.CAUSAL_LM,  # SEQ_CLS: head trains
                            tie_embeddings=tied and bool(embeddings))
    try:
        model = get_peft_model(model, config)
    except ValueError as err:
        raise ConfigError(f"`lora_target` ({args.finetuning_type}): {err}") from None
    logger.info("%s; targets %s", describe(args, config),
                ", ".join(targets) if len(targets) <= 12 else f"{len(targets)} modules ({', '.join(targets[:3])}, ...)")
    if embeddings:
        logger.info("Vocab has been resized: %s train in full and are saved with the adapter%s",
                    ", ".join(embeddings), " (tied output head included)" if tied else "")
    return model


def apply_new_rows_only(model, finetuning_type: str, new_ids: list[int]):
    """Train only the embedding rows of ``new_ids`` (input embedding and untied output head).

    lora: a peft trainable-tokens adapter (only the new rows are stored, the adapter stays small).
    full/freeze: every tensor but the embedding matrices is frozen here; the rows of the other tokens are
    held by a row gate (train/token_training.py), so they stay bit-identical too.
    """
    if not new_ids:
        raise ConfigError("`train_new_tokens_only` needs tokens to add (add_special_tokens, add_tokens, "
                          "add_extra_id_tokens, ...)")
    if finetuning_type in ("lora", "oft"):
        from peft import TrainableTokensConfig, get_peft_model

        config = TrainableTokensConfig(target_modules=embedding_module_names(model), token_indices=list(new_ids))
        model = get_peft_model(model, config)
        logger.info("train_new_tokens_only: a trainable-tokens adapter over %d rows of %s", len(new_ids),
                    ", ".join(config.target_modules))
        return model
    for param in model.parameters():
        param.requires_grad_(False)
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        if module is not None:
            module.weight.requires_grad_(True)
    logger.info("train_new_tokens_only: only the %d new rows of the embeddings train", len(new_ids))
    return model


def apply_method(model, model_args: ModelArgs, args: FinetuningArgs, train_embeddings: bool = False,
                 media: MediaArgs | None = None):
    """``train_embeddings``: new token rows were added, so the embeddings must train too; ``media``: the freeze_*
    switches of a vision-language model."""
    media = media or MediaArgs()
    if args.finetuning_type == "full":
        apply_full(model)
        freeze_parts(model, media)
    elif args.finetuning_type == "freeze":
        apply_freeze(model, args)
        freeze_parts(model, media)
        if has_score_head(model):
            model.score.requires_grad_(True)
            logger.info("freeze: the score head trains too")
        if train_embeddings:
            for weight in {id(m.weight): m.weight for m in (model.get_input_embeddings(),
                                                              model.get_output_embeddings()) if m}.values():
                weight.requires_grad_(True)
            logger.info("Vocab has been resized: the embeddings train too")
    elif args.finetuning_type in ("lora", "oft"):
        model = apply_lora(model, model_args, args, train_embeddings=train_embeddings, media=media)
    return model
