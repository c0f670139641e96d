"""Model names: a local folder, or a hub id fetched as transformers would when online and read from the local
Hugging Face cache when offline (at the requested `model_revision`, with `hf_hub_token` passed along). Every
test stays offline: hub caches are laid out on disk, the network is a refused address or a stand-in."""

from __future__ import annotations

import sys
import types
from importlib.machinery import ModuleSpec

import pytest
import torch

from tunesmith.config.errors import ConfigError
from tunesmith.config.schema import ModelArgs
from tunesmith.model import load
from tunesmith.model.load import load_model, load_tokenizer, model_path, resolve_model_path
from tunesmith.utils.hub import is_local_path

MAIN, TAGGED = "a" * 40, "b" * 40


@pytest.fixture
def cache(tmp_path):
    """A Hugging Face cache holding org/tiny at two commits: main and the tag v1."""
    repo = tmp_path / "models--org--tiny"
    for commit in (MAIN, TAGGED):
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(MAIN)
    (repo / "refs" / "v1").write_text(TAGGED)
    return tmp_path


def test_revision_picks_the_cached_snapshot(cache):
    assert resolve_model_path("org/tiny", str(cache)).endswith(MAIN)
    assert resolve_model_path("org/tiny", str(cache), revision="main").endswith(MAIN)
    assert resolve_model_path("org/tiny", str(cache), revision="v1").endswith(TAGGED)
    assert resolve_model_path("org/tiny", str(cache), revision=TAGGED, token="hf_x").endswith(TAGGED)


def test_model_args_carry_revision_and_token(cache):
    args = ModelArgs(model_name_or_path="org/tiny", cache_dir=str(cache), model_revision="v1", hf_hub_token="hf_x")
    assert model_path(args).endswith(TAGGED)


def test_offline_an_uncached_id_names_the_download_command(cache):
    with pytest.raises(ConfigError, match=r"^model `org/tiny` was not found: it is not a local folder and not in the "
                                          r"local Hugging Face cache \(.*\), and downloads are off "
                                          r"\(HF_HUB_OFFLINE=1\), so tunesmith never downloads at run time.*"
                                          r"`hf download org/tiny --revision v2 --local-dir models/tiny` \(or "
                                          r"`huggingface-cli download`"):
        resolve_model_path("org/tiny", str(cache), revision="v2")
    with pytest.raises(ConfigError, match=r"`hf download org/other --local-dir models/other`.*"
                                          r"`model_name_or_path: models/other`.*`hf download org/other` to fill the "
                                          r"cache"):
        resolve_model_path("org/other", str(cache))


def test_local_directory_ignores_revision(tmp_path):
    assert resolve_model_path(str(tmp_path), revision="v1") == str(tmp_path)


@pytest.mark.parametrize("name,local", [
    ("Qwen/Qwen3-0.6B", False), ("gpt2", False), ("org/name.v1_x", False),
    ("./qwen", True), ("../qwen", True), ("/models/qwen", True), ("~/models/qwen", True), (".hidden", True),
    ("saves/qwen/lora", True), ("org/name/", True), ("C:\\models\\qwen", True), ("org/na me", True),
    ("org--x/name", True),
])
def test_what_counts_as_a_local_path(name, local, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert is_local_path(name) is local


@pytest.mark.parametrize("name", ["./missing", "/no/such/model", "saves/run/checkpoint-5"])
def test_a_missing_local_path_is_not_found_and_never_sent_to_the_hub(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=rf"^model path `{name}` not found \(looked for .*\): it is a local path"
                       ) as err:
        resolve_model_path(name)
    assert "hf download" not in str(err.value)


def test_an_id_whose_first_part_is_a_local_folder_reads_as_a_mistyped_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "qwen-a").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"^model path `models/qwen-b` not found: the folder `models` here has no "
                                          r"`qwen-b`; check the path"):
        resolve_model_path("models/qwen-b", str(tmp_path / "cache"))


def test_a_file_is_not_a_model_folder(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"model path `.*model.safetensors` is a file"):
        resolve_model_path(str(tmp_path / "model.safetensors"))


def test_a_folder_without_a_model_says_so(tmp_path):
    with pytest.raises(ConfigError, match=r"holds no model: no config.json and no tokenizer files \(tokenizer.json, "
                                          r".*point `model_name_or_path` at the folder") as err:
        load_tokenizer(ModelArgs(model_name_or_path=str(tmp_path)))
    assert "install" not in str(err.value)  # transformers' own guess: "install sentencepiece or tiktoken"
    with pytest.raises(ConfigError, match=r"holds no model: no config.json"):
        load_model(ModelArgs(model_name_or_path=str(tmp_path)), torch.float32)


def test_an_adapter_folder_points_at_adapter_name_or_path(tmp_path):
    (tmp_path / "adapter_config.json").write_text('{"base_model_name_or_path": "org/base"}')
    with pytest.raises(ConfigError, match=r"holds no model: .*it is a PEFT adapter: set `adapter_name_or_path` to "
                                          r"it and `model_name_or_path` to its base model"):
        load_tokenizer(ModelArgs(model_name_or_path=str(tmp_path)))
    (tmp_path / "adapter_config.json").unlink()
    (tmp_path / "run" / "checkpoint-2").mkdir(parents=True)
    (tmp_path / "run" / "checkpoint-2" / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"model folders inside it: .*checkpoint-2"):
        load_model(ModelArgs(model_name_or_path=str(tmp_path / "run")), torch.float32)


def test_a_cached_hub_id_loads_offline_through_the_real_loaders(hf_cache, qwen2_model):
    """The tiny model laid out as hub repo org/tiny in HF_HOME's cache: tokenizer and weights load by id."""
    snapshot = hf_cache.add_model("org/tiny", qwen2_model)
    args = ModelArgs(model_name_or_path="org/tiny")
    assert model_path(args) == str(snapshot)
    tokenizer = load_tokenizer(args)
    model = load_model(args, torch.float32)
    assert tokenizer("1+1=?").input_ids and model.config.vocab_size == 512
    tagged = hf_cache.add_model("org/tiny", qwen2_model, revision="v1", commit=TAGGED)
    assert model_path(ModelArgs(model_name_or_path="org/tiny", model_revision="v1")) == str(tagged)


def test_without_network_a_cached_id_still_loads(hub_unreachable, qwen2_model):
    snapshot = hub_unreachable.add_model("org/tiny", qwen2_model)
    assert resolve_model_path("org/tiny") == str(snapshot)
    with pytest.raises(ConfigError, match=r"^model `org/other` was not found: .*and the Hugging Face Hub could not "
                                          r"be reached \(\w+\).*`hf download org/other --local-dir models/other`"):
        resolve_model_path("org/other")


class FakeHub:
    """huggingface_hub's model_info and snapshot_download, recording their calls (online, without a network)."""

    def __init__(self, monkeypatch, files=(), error=None, path="/cache/snapshot"):
        import huggingface_hub

        self.calls, self.files, self.error, self.path = [], list(files), error, str(path)
        monkeypatch.setattr(huggingface_hub.HfApi, "model_info", self.model_info)
        monkeypatch.setattr(huggingface_hub, "snapshot_download", self.snapshot_download)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(load, "_fetched", {})

    def model_info(self, repo_id, revision=None, token=None, **kwargs):
        self.calls.append(("model_info", repo_id, revision, token))
        if self.error is not None:
            raise self.error
        return types.SimpleNamespace(siblings=[types.SimpleNamespace(rfilename=f) for f in self.files], sha=MAIN)

    def snapshot_download(self, repo_id, **kwargs):
        self.calls.append(("snapshot_download", repo_id, kwargs))
        return self.path


def test_online_a_hub_id_is_downloaded_with_revision_token_and_cache_dir(monkeypatch, tmp_path):
    fake = FakeHub(monkeypatch, files=["config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json"],
                   path=tmp_path)
    args = ModelArgs(model_name_or_path="org/tiny", cache_dir="/my/cache", model_revision="v1", hf_hub_token="hf_x")
    assert model_path(args) == str(tmp_path)
    assert model_path(args) == str(tmp_path) and len(fake.calls) == 2  # checked once per process
    assert fake.calls[0] == ("model_info", "org/tiny", "v1", "hf_x")
    kwargs = fake.calls[1][2]
    assert (kwargs["revision"], kwargs["cache_dir"], kwargs["token"]) == ("v1", "/my/cache", "hf_x")
    assert "*.bin" in kwargs["ignore_patterns"] and "original/*" in kwargs["ignore_patterns"]


def test_online_pickled_weights_are_fetched_when_they_are_the_only_weights(monkeypatch):
    fake = FakeHub(monkeypatch, files=["config.json", "pytorch_model.bin"])
    resolve_model_path("org/old")
    assert "*.bin" not in fake.calls[1][2]["ignore_patterns"]


def _http_error(cls):
    import httpx2

    request = httpx2.Request("GET", "https://huggingface.co/api/models/org/x")
    return cls("answer", response=httpx2.Response(404, request=request))


@pytest.mark.parametrize("error,message", [
    ("RepositoryNotFoundError", r"^model `org/x` was not found: no local folder of that name, and no model `org/x` "
                                r"on the Hugging Face Hub"),
    ("GatedRepoError", r"^model `org/x` is gated on the Hugging Face Hub: accept its terms at "
                       r"https://huggingface.co/org/x, then log in \(`hf auth login`\) or set `hf_hub_token`"),
    ("RevisionNotFoundError", r"^model `org/x` has no revision `main` on the Hugging Face Hub"),
])
def test_online_hub_answers_become_clear_errors(error, message, monkeypatch):
    from huggingface_hub import errors

    FakeHub(monkeypatch, error=_http_error(getattr(errors, error)))
    with pytest.raises(ConfigError, match=message):
        resolve_model_path("org/x")


def test_modelscope_hub_when_asked(monkeypatch):
    monkeypatch.setenv("USE_MODELSCOPE_HUB", "1")
    monkeypatch.delitem(sys.modules, "modelscope", raising=False)
    monkeypatch.setattr(load, "modelscope_available", lambda: False)
    with pytest.raises(ConfigError, match=r"model `org/x`: USE_MODELSCOPE_HUB is set, so it would come from "
                                          r"ModelScope, but modelscope is not installed: `pip install modelscope`"):
        resolve_model_path("org/x")
    calls = []
    fake = types.ModuleType("modelscope")
    fake.__spec__ = ModuleSpec("modelscope", None)
    fake.snapshot_download = lambda name, revision, cache_dir: calls.append((name, revision, cache_dir)) or "/ms/x"
    monkeypatch.setitem(sys.modules, "modelscope", fake)
    monkeypatch.setattr(load, "modelscope_available", lambda: True)
    assert resolve_model_path("org/x", cache_dir="/c") == "/ms/x"
    assert calls == [("org/x", "master", "/c")]  # ModelScope's default branch
