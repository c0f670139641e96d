"""Load tokenizer and model from a local directory or a Hugging Face Hub id.

A hub id is fetched as transformers would (into the hub cache, `cache_dir` if set, at `model_revision`, with
`hf_hub_token`) when online; with HF_HUB_OFFLINE=1, or when the hub cannot be reached, it loads from the local
cache or fails naming the download command. What counts as a local path and what as a hub id: utils/hub.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..config.errors import ConfigError
from ..config.schema import ModelArgs
from ..utils import hub
from ..utils.versions import modelscope_available
from .attention import choose_attention
from .vision import is_vision_language, model_type
from .quantize import load_kwargs, quantize_loaded

logger = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt",
                   "spiece.model", "sentencepiece.bpe.model", "tekken.json")
# Files transformers never reads for a PyTorch model: other frameworks' weights, Meta's original checkpoints.
NEVER_READ = ["*.h5", "*.msgpack", "*.ot", "*.onnx", "*.onnx_data", "*.gguf", "*.tflite", "*.mlmodel",
              "original/*", "onnx/*", "coreml/*", "openvino/*"]
PICKLED_WEIGHTS = ["*.bin", "*.pt", "*.pth"]  # skipped when the repo has safetensors (transformers prefers them)
_fetched: dict[tuple, str] = {}  # hub downloads already checked in this process


def resolve_model_path(name: str, cache_dir: str | None = None, revision: str | None = None,
                       token: str | None = None) -> str:
    """A local folder, or the local snapshot of a hub id: downloaded (or brought up to date) when online,
    from the local cache when offline. ``revision``: branch, tag or commit hash (default main); ``token`` goes
    along with every hub request."""
    local = Path(name).expanduser()
    if local.is_dir():
        return str(local)
    if hub.is_local_path(name):
        raise _path_not_found(name, local)
    if hub.use_modelscope():
        return _from_modelscope(name, cache_dir, revision)
    if hub.is_offline():
        path = hub.cached_snapshot(name, cache_dir=cache_dir, revision=revision, token=token)
        if path is None:
            raise _not_available(name, cache_dir, revision, f"downloads are off ({hub.offline_variable()}), so "
                                 "tunesmith never downloads at run time (unset it to let tunesmith download)")
        return path
    return _download(name, cache_dir, revision, token)


def model_path(args: ModelArgs) -> str:
    """``resolve_model_path`` with the run's `cache_dir`, `model_revision` and `hf_hub_token`."""
    return resolve_model_path(args.model_name_or_path, args.cache_dir, args.model_revision, args.hf_hub_token)


def _download(name: str, cache_dir: str | None, revision: str | None, token: str | None) -> str:
    key = (name, hub.hub_cache(cache_dir), revision, token)
    if key in _fetched and Path(_fetched[key]).is_dir():
        return _fetched[key]
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    at = f" at revision `{revision}`" if revision not in (None, "main") else ""
    try:
        info = HfApi().model_info(name, revision=revision, token=token)
        files = [sibling.rfilename for sibling in info.siblings or ()]
        ignore = NEVER_READ + (PICKLED_WEIGHTS if any(f.endswith(".safetensors") for f in files) else [])
        logger.info("model %s%s: fetching from the Hugging Face Hub into %s (files already there are reused)",
                    name, at, hub.hub_cache(cache_dir))
        path = snapshot_download(name, revision=revision, cache_dir=cache_dir, token=token, ignore_patterns=ignore)
    except GatedRepoError:
        raise ConfigError(f"model `{name}` is gated on the Hugging Face Hub: accept its terms at "
                          f"https://huggingface.co/{name}, then log in (`hf auth login`) or set `hf_hub_token`"
                          ) from None
    except RepositoryNotFoundError:
        raise _not_on_hub(name) from None
    except RevisionNotFoundError:
        raise ConfigError(f"model `{name}` has no revision `{revision or 'main'}` on the Hugging Face Hub "
                          "(`model_revision`: a branch, tag or commit hash)") from None
    except Exception as err:  # noqa: BLE001 - network failures come from several libraries
        if not hub.is_unreachable(err):
            raise ConfigError(f"model `{name}`{at}: download from the Hugging Face Hub failed: "
                              f"{type(err).__name__}: {err}") from None
        path = hub.cached_snapshot(name, cache_dir=cache_dir, revision=revision, token=token)
        if path is None:
            raise _not_available(name, cache_dir, revision, f"the Hugging Face Hub could not be reached "
                                 f"({type(err).__name__})") from None
        logger.warning("model %s: the Hugging Face Hub could not be reached (%s); using the cached snapshot %s",
                       name, type(err).__name__, path)
    _fetched[key] = path
    return path


def _from_modelscope(name: str, cache_dir: str | None, revision: str | None) -> str:
    """LLaMA-Factory's USE_MODELSCOPE_HUB=1: the id is a ModelScope model (its `main` is ModelScope's master)."""
    if not modelscope_available():
        raise ConfigError(f"model `{name}`: USE_MODELSCOPE_HUB is set, so it would come from ModelScope, but "
                          "modelscope is not installed: `pip install modelscope`, or unset USE_MODELSCOPE_HUB to "
                          "use the Hugging Face Hub")
    from modelscope import snapshot_download

    try:
        return snapshot_download(name, revision="master" if revision in (None, "main") else revision,
                                 cache_dir=cache_dir)
    except Exception as err:  # noqa: BLE001 - modelscope raises its own and requests' errors
        raise ConfigError(f"model `{name}` could not be fetched from ModelScope (USE_MODELSCOPE_HUB is set): "
                          f"{type(err).__name__}: {err}") from None


def _path_not_found(name: str, local: Path) -> ConfigError:
    if local.exists():
        return ConfigError(f"model path `{name}` is a file; `model_name_or_path` must be a model folder (holding "
                           "config.json and the tokenizer files) or a Hugging Face Hub id")
    return ConfigError(f"model path `{name}` not found (looked for {local.absolute()}): it is a local path, so it "
                       "is not looked up on the Hugging Face Hub (hub ids look like `org/name`); check the path")


def _not_on_hub(name: str) -> ConfigError:
    parent = hub.existing_parent(name)
    if parent is not None:
        return ConfigError(f"model path `{name}` not found: the folder `{parent}` here has no `{name.split('/')[1]}`"
                           f" (and `{name}` is not a model on the Hugging Face Hub either); check the path")
    return ConfigError(f"model `{name}` was not found: no local folder of that name, and no model `{name}` on the "
                       "Hugging Face Hub (a private repo needs `hf auth login` or `hf_hub_token`)")


def _not_available(name: str, cache_dir: str | None, revision: str | None, why: str) -> ConfigError:
    parent = hub.existing_parent(name)
    if parent is not None:
        return ConfigError(f"model path `{name}` not found: the folder `{parent}` here has no "
                           f"`{name.split('/')[1]}`; check the path (as a Hugging Face Hub id it is not in the "
                           f"local cache {hub.hub_cache(cache_dir)} either)")
    local_dir = f"models/{name.split('/')[-1]}"
    return ConfigError(
        f"model `{name}` was not found: it is not a local folder and not in the local Hugging Face cache "
        f"({hub.hub_cache(cache_dir)}), and {why}. Download it first, e.g. "
        f"`{hub.download_command(name, revision=revision, local_dir=local_dir)}` (or `huggingface-cli download` "
        f"with the same arguments) and set `model_name_or_path: {local_dir}`; or "
        f"`{hub.download_command(name, revision=revision)}` to fill the cache, after which the id loads offline.")


def _missing_model_files(path: str, wanted: tuple[str, ...]) -> ConfigError | None:
    """A clear error when folder ``path`` has none of ``wanted`` (instead of transformers' guess that a
    tokenizer library is missing), else None."""
    folder = Path(path)
    if not folder.is_dir() or any((folder / name).is_file() for name in wanted) or any(folder.glob("*.tiktoken")):
        return None
    if wanted == ("config.json",) or not (folder / "config.json").is_file():
        message = f"{path} holds no model: no config.json and no tokenizer files ({', '.join(TOKENIZER_FILES)})"
        if wanted == ("config.json",):
            message = f"{path} holds no model: no config.json"
    else:
        message = f"{path} has a config.json but no tokenizer files ({', '.join(TOKENIZER_FILES)})"
    if (folder / "adapter_config.json").is_file():
        message += ("; it is a PEFT adapter: set `adapter_name_or_path` to it and `model_name_or_path` to its base "
                    "model (`base_model_name_or_path` in adapter_config.json)")
    else:
        inside = sorted(str(p.parent) for p in folder.glob("*/config.json"))[:3]
        message += (f"; model folders inside it: {', '.join(inside)}" if inside
                    else "; point `model_name_or_path` at the folder that holds config.json and the tokenizer")
    return ConfigError(message)


def load_tokenizer(args: ModelArgs):
    from transformers import AutoTokenizer

    path = model_path(args)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=args.use_fast_tokenizer, local_files_only=True,
                                                  trust_remote_code=args.trust_remote_code)
    except (OSError, ValueError) as err:
        missing = _missing_model_files(path, TOKENIZER_FILES)
        raise (missing or ConfigError(f"cannot load a tokenizer from {path}: {err}")) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
        logger.info("tokenizer has no pad token; using eos %r for padding (pads are never trained)",
                    tokenizer.eos_token)
    return tokenizer


def load_model(args: ModelArgs, dtype, attn: str | None = None, head: str = "lm", pad_token_id: int | None = None,
               packed: bool = False):
    """A causal LM in ``dtype`` with the requested attention kernel (``flash_attn``, see model/attention.py;
    ``packed``: training batches carry sequence boundaries, so a varlen kernel can serve them).

    ``head="score"``: the same body with a one-output linear `score` head instead of the LM head (a
    transformers *ForSequenceClassification model, for reward models); a causal-LM checkpoint gets a
    freshly initialised head, a reward checkpoint keeps its own."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    path = model_path(args)
    missing = _missing_model_files(path, ("config.json",))
    if missing is not None:
        raise missing
    impl = attn or choose_attention(args.flash_attn, packed)
    logger.info("attention: %s", impl)
    if not args.low_cpu_mem_usage:
        logger.info("low_cpu_mem_usage: false changes nothing: transformers 5 always loads weights lazily")
    common = dict(trust_remote_code=args.trust_remote_code)
    auto = AutoModelForCausalLM
    if is_vision_language(path):
        if head == "score":
            raise ConfigError(f"{path} is a vision-language model ({model_type(path)}): reward models (a score head) "
                              "on it are not supported; train the reward model on its text-only sibling")
        from transformers import AutoModelForImageTextToText as auto
    elif head == "score":
        auto = AutoModelForSequenceClassification
        common["num_labels"] = 1
        if pad_token_id is not None:
            common["pad_token_id"] = pad_token_id
    quantized = load_kwargs(args, path, dtype, head)
    try:
        if args.train_from_scratch:
            config = AutoConfig.from_pretrained(path, local_files_only=True, **common)
            model = auto.from_config(config, dtype=dtype, attn_implementation=impl,
                                     trust_remote_code=args.trust_remote_code)
            logger.info("train_from_scratch: randomly initialised %s from %s", type(model).__name__, path)
        else:
            model = auto.from_pretrained(path, dtype=dtype, attn_implementation=impl, local_files_only=True,
                                         **common, **quantized)
    except OSError as err:
        raise ConfigError(f"cannot load model weights from {path}: {err}") from None
    except ValueError as err:
        if head == "score":
            raise ConfigError(f"{path}: transformers has no sequence-classification (reward) variant of this "
                              f"model: {err}") from None
        raise
    except ImportError as err:  # a quantization backend transformers needs and cannot import
        raise ConfigError(f"cannot load {path}: {err}") from None
    return quantize_loaded(model, args, path, dtype)


def count_parameters(model) -> tuple[int, int]:
    trainable = total = 0
    for param in model.parameters():
        n = param.numel()
        total += n
        if param.requires_grad:
            trainable += n
    return trainable, total
