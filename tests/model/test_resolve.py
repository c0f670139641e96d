"""Hub ids resolve from the local cache only, at the requested `model_revision`, with `hf_hub_token` passed along."""

from __future__ import annotations

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.config.schema import ModelArgs
from tunesmith.model.load import model_path, resolve_model_path

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


def test_uncached_revision_is_not_downloaded(cache):
    with pytest.raises(ConfigError, match=r"^model `org/tiny` was not found: .*never downloads at run time: "
                                          r"download it first \(e.g. `huggingface-cli download org/tiny --revision v2 "
                                          r"--local-dir models/tiny`\)"):
        resolve_model_path("org/tiny", str(cache), revision="v2")
    with pytest.raises(ConfigError, match=r"`huggingface-cli download org/other --local-dir models/other`"):
        resolve_model_path("org/other", str(cache))


def test_local_directory_ignores_revision(tmp_path):
    assert resolve_model_path(str(tmp_path), revision="v1") == str(tmp_path)
