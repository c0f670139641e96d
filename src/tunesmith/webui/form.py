"""The training form: its fields (names, defaults and help from the config schema), the YAML built from the
values a user entered, and its validation by config.load exactly as `tunesmith train that.yaml` reads it."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from ..config.errors import ConfigError
from ..config.load import build_config, load_yaml
from ..config.schema import SECTIONS, Config
from .paths import PathPolicy

# transformers' TrainingArguments defaults for the keys the form shows (tests/webui checks them against
# transformers); the schema's own keys take their defaults from config/schema.py.
HF_DEFAULTS: dict[str, Any] = {
    "learning_rate": 5e-5, "num_train_epochs": 3.0, "max_steps": -1, "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 1, "lr_scheduler_type": "linear", "logging_steps": 500, "save_steps": 500,
    "seed": 42, "bf16": False,
}
HF_HELP = {
    "learning_rate": "Peak learning rate (AdamW).", "num_train_epochs": "Passes over the training data.",
    "max_steps": "Stop after this many optimizer steps (-1: use num_train_epochs).",
    "per_device_train_batch_size": "Examples per device per micro-batch.",
    "gradient_accumulation_steps": "Micro-batches per optimizer step.",
    "lr_scheduler_type": "Learning-rate schedule.", "warmup_ratio": "Fraction of the steps spent warming up.",
    "logging_steps": "Write trainer_log.jsonl (and the curves here) every N steps.",
    "save_steps": "Save a checkpoint every N steps (resume continues from the newest complete one).",
    "seed": "Random seed.", "bf16": "bfloat16 mixed precision (falls back to float32 without a CUDA GPU).",
    "output_dir": "Where the run writes its checkpoints, model, trainer_log.jsonl and plots.",
    "overwrite_output_dir": "Start over in a non-empty output_dir (otherwise a run resumes from its newest "
                            "complete checkpoint, and refuses a folder that holds something else).",
}
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "warmup_stable_decay")
UI_STAGES = ("sft", "pt", "rm", "dpo", "kto")
ALWAYS = ("model_name_or_path", "stage", "do_train", "finetuning_type", "dataset", "dataset_dir", "template",
          "output_dir")


@dataclass(frozen=True)
class Field:
    key: str
    kind: str  # text | int | float | bool | choice | list (comma-separated) | tristate (auto/true/false)
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    group: str = "train"


def _schema_field(key: str):
    for cls in SECTIONS.values():
        for f in fields(cls):
            if f.name == key:
                default = f.default if f.default is not MISSING else f.default_factory()
                return default, f.metadata.get("help", ""), f.metadata.get("choices") or ()
    raise KeyError(key)


def _field(key: str, kind: str, group: str, choices: tuple[str, ...] = (), default: Any = MISSING) -> Field:
    if key in HF_DEFAULTS or key in HF_HELP:
        base = HF_DEFAULTS.get(key, {"float": 0.0, "bool": False}.get(kind))
        help_, own = HF_HELP.get(key, ""), ()
    else:
        base, help_, own = _schema_field(key)
    if isinstance(base, tuple):
        base = ",".join(str(v) for v in base)
    return Field(key, kind, base if default is MISSING else default, help_, choices or tuple(own), group)


def template_names() -> tuple[str, ...]:
    from ..templates import builtin  # noqa: F401  (fills the registry)
    from ..templates.registry import TEMPLATES

    return tuple(sorted(TEMPLATES))


def form_fields() -> tuple[Field, ...]:
    """The form, group by group, in the order a user fills it."""
    return (
        _field("model_name_or_path", "text", "model", default=""),
        _field("template", "choice", "model", choices=("",) + template_names(), default=""),
        _field("stage", "choice", "model", choices=UI_STAGES),
        _field("finetuning_type", "choice", "model"),
        _field("dataset_dir", "text", "data"),
        _field("dataset", "list", "data"),
        _field("cutoff_len", "int", "data"),
        _field("max_samples", "int", "data"),
        _field("val_size", "float", "data"),
        _field("lora_rank", "int", "method"),
        _field("lora_alpha", "float", "method"),
        _field("lora_dropout", "float", "method"),
        _field("lora_target", "list", "method"),
        _field("freeze_trainable_layers", "int", "method"),
        _field("add_special_tokens", "list", "tokens"),
        _field("init_special_tokens", "choice", "tokens"),
        _field("token_loss_weights", "text", "tokens", default=""),
        _field("special_token_metrics", "tristate", "tokens", choices=("auto", "true", "false"), default="auto"),
        _field("learning_rate", "float", "train"),
        _field("num_train_epochs", "float", "train"),
        _field("max_steps", "int", "train"),
        _field("per_device_train_batch_size", "int", "train"),
        _field("gradient_accumulation_steps", "int", "train"),
        _field("lr_scheduler_type", "choice", "train", choices=SCHEDULERS),
        _field("warmup_ratio", "float", "train"),
        _field("logging_steps", "int", "train"),
        _field("save_steps", "int", "train"),
        _field("seed", "int", "train"),
        _field("bf16", "bool", "train"),
        _field("output_dir", "text", "output", default="saves/run"),
        _field("overwrite_output_dir", "bool", "output"),
    )


GROUP_TITLES = {"model": "model", "data": "dataset", "method": "method", "tokens": "special tokens",
                "train": "train", "output": "output", "extra": "other keys"}


def _value(f: Field, value: Any) -> Any:
    """A form value as the YAML holds it; None: not written."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if f.kind == "list":
        items = value if isinstance(value, (list, tuple)) else str(value).split(",")
        items = [str(v).strip() for v in items if str(v).strip()]
        return ",".join(items) or None
    if f.kind in ("int", "float"):
        try:
            float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"`{f.key}` must be a number, got {value!r}") from None
    if f.kind == "int":
        number = float(value)
        if number != int(number):
            raise ConfigError(f"`{f.key}` must be a whole number, got {value!r}")
        return int(number)
    if f.kind == "float":
        return float(value)
    if f.kind == "bool":
        return bool(value)
    if f.kind == "tristate":
        return None if value == "auto" else value == "true"
    return str(value).strip()


def build_values(form: dict[str, Any], extra_yaml: str = "") -> dict[str, Any]:
    """The keys the YAML will hold: the core keys always, other fields where they differ from their default,
    then the "other keys" text (any config key, YAML), which wins."""
    out: dict[str, Any] = {}
    for f in form_fields():
        if f.key not in form:
            continue
        value = _value(f, form[f.key])
        default = _value(f, f.default) if f.default is not None else None
        if f.key == "stage":
            out["stage"] = value
            out["do_train"] = True
            continue
        if value is not None and (f.key in ALWAYS or value != default):
            out[f.key] = value
    if extra_yaml and extra_yaml.strip():
        try:
            extra = load_yaml(extra_yaml)
        except yaml.YAMLError as err:
            raise ConfigError(f"other keys: invalid YAML: {getattr(err, 'problem', err)}") from None
        if extra is not None and not isinstance(extra, dict):
            raise ConfigError("other keys: write `key: value` lines")
        out.update({str(k): v for k, v in (extra or {}).items()})
    return out


def form_from_yaml(text: str, origin: str) -> tuple[dict[str, Any], str]:
    """An existing config back into the form: (form values, the "other keys" YAML for keys the form lacks).
    ``build_values`` of the result gives the same keys and values."""
    try:
        data = load_yaml(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{origin}: invalid YAML: {getattr(err, 'problem', err)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: a config must be a mapping of key: value")
    by_key = {f.key: f for f in form_fields()}
    form: dict[str, Any] = {key: f.default for key, f in by_key.items()}
    extra: dict[str, Any] = {}
    for key, value in data.items():
        f = by_key.get(str(key))
        if key == "do_train" and value is True:
            continue
        if f is None or (f.kind == "choice" and value not in f.choices) or isinstance(value, dict) or \
                (f.kind in ("int", "float", "bool") and not isinstance(value, (int, float))):
            extra[str(key)] = value  # not a form field, or a value the field cannot show: kept as written
            continue
        if f.kind == "list":
            items = value if isinstance(value, list) else str(value).split(",")
            value = [str(v).strip() for v in items if str(v).strip()]
            value = value if key == "dataset" else ",".join(value)
        elif f.kind == "tristate":
            value = "auto" if value is None else "true" if value else "false"
        form[str(key)] = value
    if "do_train" in data and data["do_train"] is not True:
        extra["do_train"] = data["do_train"]
    text = yaml.safe_dump(extra, sort_keys=False, allow_unicode=True) if extra else ""
    return form, text


def to_yaml(values: dict[str, Any]) -> str:
    """LLaMA-Factory's layout: one commented block per group, keys in form order, other keys last."""
    groups: dict[str, dict[str, Any]] = {}
    known = {f.key: f.group for f in form_fields()}
    known["do_train"] = "model"
    for key, value in values.items():
        groups.setdefault(known.get(key, "extra"), {})[key] = value
    blocks = []
    for group in GROUP_TITLES:
        if group in groups:
            body = yaml.safe_dump(groups[group], sort_keys=False, allow_unicode=True, default_flow_style=False)
            blocks.append(f"### {GROUP_TITLES[group]}\n{body}")
    return "\n".join(blocks)


def validate_yaml(text: str, origin: str, purpose: str | None = None) -> Config:
    """The Config `tunesmith train <origin>` would build from this text (ConfigError otherwise)."""
    try:
        data = load_yaml(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{origin}: invalid YAML: {getattr(err, 'problem', err)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: a config must be a mapping of key: value")
    return build_config({str(k): (v, origin) for k, v in data.items()}, purpose=purpose)


PATH_KEYS = ("dataset_dir", "output_dir", "export_dir", "tokenized_path", "new_special_tokens_config",
             "special_tokens_file", "cache_dir", "save_dir", "task_dir", "logging_dir", "deepspeed")
MODEL_KEYS = ("model_name_or_path", "ref_model", "reward_model")  # a hub id, or an allowed path
LIST_KEYS = ("adapter_name_or_path", "ref_model_adapters", "reward_model_adapters")


def check_paths(cfg_values: dict[str, Any], policy: PathPolicy) -> None:
    """Every path the run reads or writes must be allowed (ConfigError naming the key otherwise)."""
    for key in MODEL_KEYS:
        if isinstance(cfg_values.get(key), str) and cfg_values[key].strip() and \
                not (key == "reward_model" and cfg_values[key].startswith(("http://", "https://"))):
            policy.check_model(cfg_values[key], key)
    for key in LIST_KEYS:
        paths = cfg_values.get(key) or []
        for path in paths.split(",") if isinstance(paths, str) else paths:
            policy.check(str(path).strip(), key)
    for key in (*PATH_KEYS, "resume_from_checkpoint"):
        value = cfg_values.get(key)
        if value and isinstance(value, str) and value.lower() != "true":
            policy.check(value, key)


def save_yaml(text: str, path: Path, purpose: str | None = None) -> Config:
    """Validate, then write atomically; the file is exactly what the CLI will read."""
    cfg = validate_yaml(text, str(path), purpose=purpose)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return cfg
