"""Datasets registered as LLaMA-Factory's dataset_info.json registers them from a hub: `hf_hub_url` (with
`subset`, `split`, `folder`), `ms_hub_url`, `script_url`. Every test stays offline: the hub's repos are laid out
in a Hugging Face cache on disk (`hf_cache`), the network is a refused address or a stand-in."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import types
from importlib.machinery import ModuleSpec

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.data import hub as data_hub
from tunesmith.data.files import load_rows, local_files
from tunesmith.data.registry import get_dataset_attrs
from tunesmith.data.stream import iter_rows

ROWS = [{"instruction": f"What is {a}+{b}?", "input": "", "output": f"{a}+{b}={a + b}"}
        for a, b in [(1, 1), (2, 3), (4, 4), (5, 2)]]
CHAT = [{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
        {"conversations": [{"from": "human", "value": "1+1=?"}, {"from": "gpt", "value": "2"}]}]
# A dataset card declaring two subsets, as multi-subset hub datasets (e.g. llamafactory/DPO-En-Zh-20k) do.
CARD = """---
configs:
- config_name: en
  data_files:
  - split: train
    path: en/train.json
  - split: test
    path: en/test.jsonl
- config_name: zh
  data_files:
  - split: train
    path: zh/*.jsonl
---
# Demo
"""


def parquet(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def attr_of(tmp_path, entry: dict, name: str = "hub"):
    root = tmp_path / "registry"
    root.mkdir(exist_ok=True)
    (root / "dataset_info.json").write_text(json.dumps({name: entry}))
    return get_dataset_attrs((name,), root)[0]


def add_multi(hf_cache):
    return hf_cache.add("org/multi", {
        "README.md": CARD,
        "en/train.json": json.dumps(ROWS[:2]),
        "en/test.jsonl": jsonl(ROWS[2:]),
        "zh/part-0.jsonl": jsonl([{"instruction": "你好", "input": "", "output": "你好!"}]),
        "python/code.jsonl": jsonl([{"instruction": "print 1", "input": "", "output": "print(1)"}]),
    }, repo_type="dataset")


def test_hf_hub_dataset_loads_offline_from_the_hub_cache(hf_cache, tmp_path):
    hf_cache.add("org/arith", {"data/train.json": json.dumps(ROWS)}, repo_type="dataset")
    attr = attr_of(tmp_path, {"hf_hub_url": "org/arith"})
    assert (attr.load_from, attr.source) == ("hf_hub", "org/arith")
    assert load_rows(attr) == ROWS


def test_subset_split_and_folder_are_passed_as_llamafactory_passes_them(hf_cache, tmp_path):
    add_multi(hf_cache)
    assert load_rows(attr_of(tmp_path, {"hf_hub_url": "org/multi", "subset": "en"})) == ROWS[:2]
    assert load_rows(attr_of(tmp_path, {"hf_hub_url": "org/multi", "subset": "en", "split": "test"})) == ROWS[2:]
    assert load_rows(attr_of(tmp_path, {"hf_hub_url": "org/multi", "subset": "zh"}))[0]["output"] == "你好!"
    assert load_rows(attr_of(tmp_path, {"hf_hub_url": "org/multi", "folder": "python"}))[0]["output"] == "print(1)"


def test_a_bad_subset_or_split_names_the_dataset(hf_cache, tmp_path):
    add_multi(hf_cache)
    with pytest.raises(ConfigError, match=r"^dataset `hub` \(`hf_hub_url` `org/multi`, subset `fr`, split `train`\): "
                                          r"its files in the local Hugging Face cache \(.*\) could not be read: "
                                          r"ValueError: BuilderConfig 'fr' not found. Available: \['en', 'zh'\] "
                                          r"\(read from the cache because downloads are off"):
        load_rows(attr_of(tmp_path, {"hf_hub_url": "org/multi", "subset": "fr"}))


def test_offline_an_uncached_dataset_names_it_and_the_download_command(hf_cache, tmp_path):
    with pytest.raises(ConfigError, match=r"^dataset `hub` \(`hf_hub_url` `org/absent`, split `train`\) is not "
                                          r"available: downloads are off \(HF_HUB_OFFLINE=1; without it tunesmith "
                                          r"downloads the dataset\), and it is not in the local Hugging Face cache "
                                          r"\(.*hf-home/hub\)\. Download it while online with `hf download org/absent "
                                          r"--repo-type dataset`"):
        load_rows(attr_of(tmp_path, {"hf_hub_url": "org/absent"}))


def test_without_network_the_cached_files_are_used(hub_unreachable, tmp_path):
    hub_unreachable.add("org/arith", {"train.jsonl": jsonl(ROWS)}, repo_type="dataset")
    assert load_rows(attr_of(tmp_path, {"hf_hub_url": "org/arith"})) == ROWS
    with pytest.raises(ConfigError, match=r"dataset `hub` \(`hf_hub_url` `org/absent`, split `train`\) is not "
                                          r"available: the Hugging Face Hub could not be reached \(\w+\)"):
        load_rows(attr_of(tmp_path, {"hf_hub_url": "org/absent"}))


def test_streaming_reads_the_split_files(hf_cache, tmp_path):
    add_multi(hf_cache)
    attr = attr_of(tmp_path, {"hf_hub_url": "org/multi", "subset": "en", "split": "test"})
    assert [p.name for p in local_files(attr)] == ["test.jsonl"]
    assert list(iter_rows(attr)) == ROWS[2:]
    with pytest.raises(ConfigError, match=r"no data files for split `validation`; its splits: train, test"):
        local_files(attr_of(tmp_path, {"hf_hub_url": "org/multi", "subset": "en", "split": "validation"}))


class OnlineHub:
    """huggingface_hub's dataset_info and datasets.load_dataset, recording their calls (online, no network)."""

    def __init__(self, monkeypatch, error=None):
        import datasets
        import huggingface_hub

        self.calls, self.error = [], error
        monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", self.dataset_info)
        monkeypatch.setattr(datasets, "load_dataset", self.load_dataset)
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    def dataset_info(self, repo_id, token=None, **kwargs):
        self.calls.append(("dataset_info", repo_id, token))
        if self.error is not None:
            raise self.error
        return types.SimpleNamespace(id=repo_id)

    def load_dataset(self, path, **kwargs):
        import datasets

        self.calls.append(("load_dataset", path, kwargs))
        return datasets.Dataset.from_list(ROWS)


def test_online_load_dataset_gets_the_entry_and_the_run_settings(monkeypatch, tmp_path):
    hub = OnlineHub(monkeypatch)
    attr = attr_of(tmp_path, {"hf_hub_url": "org/multi", "subset": "en", "folder": "data", "split": "train_sft"})
    assert load_rows(attr, cache_dir="/c", token="hf_x") == ROWS
    assert hub.calls == [("dataset_info", "org/multi", "hf_x"),
                         ("load_dataset", "org/multi", {"name": "en", "data_dir": "data", "split": "train_sft",
                                                         "cache_dir": "/c", "token": "hf_x"})]


def _http_error(cls):
    import httpx2

    request = httpx2.Request("GET", "https://huggingface.co/api/datasets/org/x")
    return cls("answer", response=httpx2.Response(404, request=request))


@pytest.mark.parametrize("error,message", [
    ("RepositoryNotFoundError", r": there is no dataset `org/x` on the Hugging Face Hub \(a private one needs "
                                r"`hf auth login` or HF_TOKEN\)"),
    ("GatedRepoError", r" is gated on the Hugging Face Hub: accept its terms at https://huggingface.co/datasets/org/x"),
])
def test_online_hub_answers_become_clear_errors(error, message, monkeypatch, tmp_path):
    from huggingface_hub import errors

    OnlineHub(monkeypatch, error=_http_error(getattr(errors, error)))
    with pytest.raises(ConfigError, match=r"^dataset `hub` \(`hf_hub_url` `org/x`, split `train`\)" + message):
        load_rows(attr_of(tmp_path, {"hf_hub_url": "org/x"}))


def test_script_url_is_a_folder_under_dataset_dir(tmp_path):
    attr = attr_of(tmp_path, {"script_url": "local_set", "subset": "en"})
    folder = tmp_path / "registry" / "local_set"
    (folder / "en").mkdir(parents=True)
    (folder / "README.md").write_text(CARD)
    (folder / "en" / "train.json").write_text(json.dumps(ROWS))
    (folder / "en" / "test.jsonl").write_text(jsonl(ROWS[:1]))
    assert (attr.load_from, attr.source) == ("script", str(folder))
    assert load_rows(attr) == ROWS
    (folder / "local_set.py").write_text("import datasets\n")
    with pytest.raises(ConfigError, match=r"is a loading script, and `datasets` 5 no longer runs loading scripts"):
        load_rows(attr)
    with pytest.raises(ConfigError, match=r"dataset `hub`: folder .*registry/nope not found \(from `script_url`"):
        load_rows(attr_of(tmp_path, {"script_url": "nope"}))


def test_hub_urls_are_picked_as_llamafactory_picks_them(tmp_path, monkeypatch):
    monkeypatch.delenv("USE_MODELSCOPE_HUB", raising=False)
    both = {"hf_hub_url": "org/hf", "ms_hub_url": "org/ms", "file_name": "local.json"}
    assert attr_of(tmp_path, both).load_from == "hf_hub"  # a hub url before file_name, as in LLaMA-Factory
    assert attr_of(tmp_path, {"ms_hub_url": "org/ms"}).load_from == "ms_hub"
    monkeypatch.setenv("USE_MODELSCOPE_HUB", "1")
    assert (attr_of(tmp_path, both).load_from, attr_of(tmp_path, both).source) == ("ms_hub", "org/ms")


def test_modelscope_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("USE_MODELSCOPE_HUB", "1")
    attr = attr_of(tmp_path, {"hf_hub_url": "org/hf", "ms_hub_url": "org/ms", "subset": "en"})
    monkeypatch.setattr(data_hub, "modelscope_available", lambda: False)
    with pytest.raises(ConfigError, match=r"dataset `hub` \(`ms_hub_url` `org/ms`, subset `en`, split `train`, chosen "
                                          r"because USE_MODELSCOPE_HUB is set\) comes from ModelScope, but modelscope "
                                          r"is not installed: `pip install modelscope`"):
        load_rows(attr)
    calls = []

    class MsDataset:
        @staticmethod
        def load(**kwargs):
            import datasets

            calls.append(kwargs)
            return datasets.Dataset.from_list(ROWS)

    fake = types.ModuleType("modelscope")
    fake.__spec__, fake.MsDataset = ModuleSpec("modelscope", None), MsDataset
    monkeypatch.setitem(sys.modules, "modelscope", fake)
    monkeypatch.setattr(data_hub, "modelscope_available", lambda: True)
    assert load_rows(attr, cache_dir="/c") == ROWS
    assert calls == [{"dataset_name": "org/ms", "subset_name": "en", "data_dir": None, "split": "train",
                      "cache_dir": "/c"}]


@pytest.mark.parametrize("entry,message", [
    ({"om_hub_url": "org/om"}, r"openMind hub datasets are not supported by tunesmith"),
    ({"cloud_file_name": "s3://bucket/x.json"}, r"cloud files \(s3://, gs://\) are not read by tunesmith"),
])
def test_other_sources_are_refused_by_name(entry, message, tmp_path):
    with pytest.raises(ConfigError, match=r"^dataset `hub` \(.*\): " + message):
        load_rows(attr_of(tmp_path, entry))


def test_training_on_a_cached_hub_model_and_dataset_by_id(hf_cache, qwen2_model, tmp_path, train_config):
    """model_name_or_path and hf_hub_url both hub ids, read offline from the cache by tunesmith's real paths."""
    from tunesmith.train.run import run_training

    hf_cache.add_model("org/tiny", qwen2_model)
    hf_cache.add("org/chat", {"data/train-00000.parquet": parquet(CHAT)}, repo_type="dataset")
    attr = attr_of(tmp_path, {"hf_hub_url": "org/chat", "formatting": "sharegpt"}, name="chat_hub")
    run_training(train_config("org/tiny", dataset="chat_hub", dataset_dir=str(tmp_path / "registry"), max_steps=2,
                              output_dir=str(tmp_path / "out")))
    assert attr.load_from == "hf_hub" and (tmp_path / "out" / "model.safetensors").is_file()


def test_the_cli_reads_hub_ids_from_hf_home(hf_cache, qwen2_model, tmp_path):
    """A separate process that finds the cache through HF_HOME alone, as a user's run does."""
    hf_cache.add_model("org/tiny", qwen2_model)
    hf_cache.add("org/arith", {"train.json": json.dumps(ROWS)}, repo_type="dataset")
    attr_of(tmp_path, {"hf_hub_url": "org/arith"}, name="arith_hub")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(hf_cache.home), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "tunesmith.cli", "data", "preview", "--model_name_or_path",
                           "org/tiny", "--dataset", "arith_hub", "--dataset_dir", str(tmp_path / "registry"),
                           "--template", "qwen3_nothink", "--num", "1", "--no-color"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "What is 1+1?" in proc.stdout and "arith_hub" in proc.stdout
