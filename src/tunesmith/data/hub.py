"""Datasets registered with `hf_hub_url`, `ms_hub_url` or `script_url`, loaded as LLaMA-Factory loads them:
``datasets.load_dataset(id, name=subset, data_dir=folder, split=split, cache_dir=cache_dir)``, into the row dicts
the formats read.

hf_hub_url, online: `load_dataset` downloads the repo's files into the Hugging Face cache (HF_HOME/hub) and
prepares them under `cache_dir` (default HF_HOME/datasets). Offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE), or
when the hub cannot be reached: the repo's files in the hub cache (left by an earlier online run, or by
`hf download <id> --repo-type dataset`), read with `load_dataset` from that folder; else the copy `datasets`
prepared in an earlier online run; else a ConfigError naming the dataset and the download command. (datasets 5
never reads the hub cache by repo id offline, only its own prepared copy: hence the first step.)

ms_hub_url (when USE_MODELSCOPE_HUB is set, or the entry has no hf_hub_url): ModelScope's MsDataset, when
modelscope is installed. script_url: a folder under dataset_dir, read with `load_dataset` (datasets 5 runs no
loading scripts). Streaming (`streaming: true`) reads files: `hub_files` lists the split's data files,
downloaded first.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from ..config.errors import ConfigError
from ..utils import hub
from ..utils.versions import modelscope_available
from .registry import DatasetAttr

logger = logging.getLogger(__name__)

REGISTRY_KEYS = {"hf_hub": "hf_hub_url", "ms_hub": "ms_hub_url", "om_hub": "om_hub_url", "script": "script_url",
                 "cloud_file": "cloud_file_name", "file": "file_name"}


def describe(attr: DatasetAttr) -> str:
    """`hf_hub_url` `org/name`, subset `en`, split `train` (what the registry entry asks for)."""
    parts = [f"`{REGISTRY_KEYS[attr.load_from]}` `{attr.source}`"]
    parts += [f"{what} `{value}`" for what, value in (("subset", attr.subset), ("folder", attr.folder))
              if value is not None]
    return ", ".join(parts + [f"split `{attr.split}`"])


def explain(err: BaseException, limit: int = 600) -> str:
    """An exception and its cause in one line (`datasets` wraps the useful part), cut to ``limit`` characters."""
    text = f"{type(err).__name__}: {err}"
    cause = err.__cause__ or err.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({type(cause).__name__}: {cause})"
    return text if len(text) <= limit else text[:limit] + " ..."


def hub_rows(attr: DatasetAttr, cache_dir: str | None = None, token: str | None = None) -> list[dict]:
    """The rows of a hub or script dataset's split. ``token``: the Hugging Face token (default: the logged-in
    one, or HF_TOKEN)."""
    if attr.load_from == "ms_hub":
        return _modelscope_rows(attr, cache_dir)
    _refuse_unsupported(attr, "")
    dataset = _resolve(attr, cache_dir, token, lambda path: _load_dataset(path, attr, cache_dir, token),
                       prepared_copy=True)
    return dataset.to_list()


def hub_files(attr: DatasetAttr, cache_dir: str | None = None, token: str | None = None) -> list[Path]:
    """The local data files of a hub or script dataset's split (hub files are downloaded first when online)."""
    if attr.load_from == "ms_hub":
        raise ConfigError(f"dataset `{attr.name}` ({describe(attr)}): streaming reads data files, which ModelScope "
                          "datasets do not give; set `streaming: false` or download the files and register them "
                          "with `file_name`")
    _refuse_unsupported(attr, " (streaming)")
    return _resolve(attr, cache_dir, token, lambda path: _split_files(path, attr, cache_dir, token),
                    prepared_copy=False)


def _refuse_unsupported(attr: DatasetAttr, what: str) -> None:
    if attr.load_from == "om_hub":
        raise ConfigError(f"dataset `{attr.name}` ({describe(attr)}): openMind hub datasets are not supported by "
                          f"tunesmith{what}; register its `hf_hub_url`, or download it and register it with "
                          "`file_name`")
    if attr.load_from == "cloud_file":
        raise ConfigError(f"dataset `{attr.name}` ({describe(attr)}): cloud files (s3://, gs://) are not read by "
                          "tunesmith; copy the file here and register it with `file_name`")


def _resolve(attr: DatasetAttr, cache_dir: str | None, token: str | None, use: Callable, prepared_copy: bool):
    """``use(path)`` on the best source of the dataset: the hub id when online, else its cached files."""
    if attr.load_from == "script":
        folder = Path(attr.source)
        if not folder.is_dir():
            raise ConfigError(f"dataset `{attr.name}`: folder {folder} not found (from `script_url` in "
                              "dataset_info.json, a folder under `dataset_dir` as in LLaMA-Factory)")
        return _attempt(attr, use, str(folder))
    if hub.is_offline(hub.DATASET_OFFLINE_VARS):
        why = (f"downloads are off ({hub.offline_variable(hub.DATASET_OFFLINE_VARS)}; without it tunesmith "
               "downloads the dataset)")
    else:
        why = _reach(attr, token)
        if why is None:
            return _attempt(attr, use, attr.source)
    failures = []
    for cache in dict.fromkeys([cache_dir, None]):
        snapshot = hub.cached_snapshot(attr.source, "dataset", cache_dir=cache, token=token)
        if snapshot is None:
            continue
        logger.info("dataset %s: reading %s from its files in the local Hugging Face cache, %s", attr.name,
                    attr.source, snapshot)
        try:
            return use(snapshot)
        except ConfigError:
            raise
        except Exception as err:  # noqa: BLE001 - reported below
            failures.append(f"its files in the local Hugging Face cache ({snapshot}) could not be read: "
                            f"{explain(err)}")
    if prepared_copy and _datasets_offline():
        try:
            return use(attr.source)  # the copy `datasets` prepared when the dataset was loaded online before
        except Exception:  # noqa: BLE001 - the usual answer is "not cached", said below
            pass
    if failures:
        raise ConfigError(f"dataset `{attr.name}` ({describe(attr)}): {'; '.join(failures)} (read from the cache "
                          f"because {why})")
    raise ConfigError(
        f"dataset `{attr.name}` ({describe(attr)}) is not available: {why}, and it is not in the local Hugging Face "
        f"cache ({hub.hub_cache()}{f' or {cache_dir}' if cache_dir else ''}). Download it while online with "
        f"`{hub.download_command(attr.source, 'dataset')}` (into the cache, after which this entry loads offline), "
        "or run once online.")


def _datasets_offline() -> bool:
    """Whether `datasets` itself is in offline mode (it then answers from its prepared copies without network)."""
    from datasets import config

    return bool(config.HF_HUB_OFFLINE)


def _reach(attr: DatasetAttr, token: str | None) -> str | None:
    """None when the hub knows the dataset; why not, when the hub cannot be reached; a ConfigError when the
    hub answers that there is no such dataset."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        HfApi().dataset_info(attr.source, token=token)
    except GatedRepoError:
        raise ConfigError(f"dataset `{attr.name}` ({describe(attr)}) is gated on the Hugging Face Hub: accept its "
                          f"terms at https://huggingface.co/datasets/{attr.source}, then log in (`hf auth login`) "
                          "or set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise ConfigError(f"dataset `{attr.name}` ({describe(attr)}): there is no dataset `{attr.source}` on the "
                          "Hugging Face Hub (a private one needs `hf auth login` or HF_TOKEN); check "
                          "dataset_info.json") from None
    except Exception as err:  # noqa: BLE001 - network failures come from several libraries
        if not hub.is_unreachable(err):
            raise ConfigError(f"dataset `{attr.name}` ({describe(attr)}): the Hugging Face Hub answered with an "
                              f"error: {type(err).__name__}: {err}") from None
        return f"the Hugging Face Hub could not be reached ({type(err).__name__})"
    return None


def _attempt(attr: DatasetAttr, use: Callable, path: str):
    try:
        return use(path)
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - `datasets` raises many kinds; each becomes one clear message
        message = str(err)
        if "scripts are no longer supported" in message:
            raise ConfigError(f"dataset `{attr.name}` ({describe(attr)}) is a loading script, and `datasets` 5 no "
                              "longer runs loading scripts: convert it to data files (json, jsonl, csv, parquet) "
                              "and register those") from None
        raise ConfigError(f"dataset `{attr.name}` ({describe(attr)}): `datasets` could not load it: "
                          f"{explain(err)}") from None


def _load_dataset(path: str, attr: DatasetAttr, cache_dir: str | None, token: str | None):
    from datasets import load_dataset

    logger.info("dataset %s: load_dataset(%s, name=%s, data_dir=%s, split=%s)", attr.name, path, attr.subset,
                attr.folder, attr.split)
    return load_dataset(path, name=attr.subset, data_dir=attr.folder, split=attr.split, cache_dir=cache_dir,
                        token=token)


def _split_files(path: str, attr: DatasetAttr, cache_dir: str | None, token: str | None) -> list[Path]:
    from datasets import DownloadConfig, DownloadManager, load_dataset_builder

    builder = load_dataset_builder(path, name=attr.subset, data_dir=attr.folder, cache_dir=cache_dir, token=token)
    data_files = builder.config.data_files or {}
    files = data_files.get(attr.split)
    if not files:
        raise ConfigError(f"dataset `{attr.name}` ({describe(attr)}): no data files for split `{attr.split}`; "
                          f"its splits: {', '.join(str(s) for s in data_files) or 'none'}")
    manager = DownloadManager(download_config=DownloadConfig(cache_dir=cache_dir, token=token))
    return [Path(p) for p in manager.download(list(files))]


def _modelscope_rows(attr: DatasetAttr, cache_dir: str | None) -> list[dict]:
    chosen = "chosen because USE_MODELSCOPE_HUB is set" if hub.use_modelscope() else "its only hub url"
    if not modelscope_available():
        raise ConfigError(f"dataset `{attr.name}` ({describe(attr)}, {chosen}) comes from ModelScope, but "
                          "modelscope is not installed: `pip install modelscope`, or unset USE_MODELSCOPE_HUB so "
                          "that entries with an `hf_hub_url` load from the Hugging Face Hub")
    from modelscope import MsDataset

    kwargs = dict(dataset_name=attr.source, subset_name=attr.subset, data_dir=attr.folder, split=attr.split)
    if cache_dir:
        kwargs["cache_dir"] = cache_dir
    try:
        dataset = MsDataset.load(**kwargs)
        if isinstance(dataset, MsDataset):
            dataset = dataset.to_hf_dataset()
        return dataset.to_list()
    except Exception as err:  # noqa: BLE001 - modelscope raises its own and requests' errors
        offline = " (is the network reachable? ModelScope downloads at run time)" if hub.is_unreachable(err) else ""
        raise ConfigError(f"dataset `{attr.name}` ({describe(attr)}): ModelScope could not load it{offline}: "
                          f"{type(err).__name__}: {err}") from None
