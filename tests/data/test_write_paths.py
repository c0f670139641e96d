"""Writing: utils/files.py turns OSErrors into one line naming the path (check_writable_dir, atomic writes);
the tokenized cache is written with it, and a damaged cache entry is rebuilt with a warning, never a crash."""

from __future__ import annotations

import errno
import logging
import os

import pytest

from tunesmith.utils.files import WriteError, atomic_write_bytes, atomic_write_text, check_writable_dir


def test_check_writable_dir_creates_the_folder(tmp_path):
    target = tmp_path / "a" / "b"
    assert check_writable_dir(target, "output_dir") == target
    assert target.is_dir() and list(target.iterdir()) == []


def test_a_path_that_exists_as_a_file_is_named(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(WriteError, match=rf"^output_dir {tmp_path}/out: cannot write there: it exists as a file, not "
                                         r"a folder; choose another path or remove the file$"):
        check_writable_dir(tmp_path / "out", "output_dir")


def test_a_parent_that_is_a_file_is_named(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(WriteError, match=rf"^output_dir {tmp_path}/f/run: cannot write there: {tmp_path}/f is a file, "
                                         r"not a folder$"):
        check_writable_dir(tmp_path / "f" / "run", "output_dir")


@pytest.mark.parametrize("code,reason", [(errno.EROFS, "read-only file system"), (errno.EACCES, "permission denied"),
                                         (errno.ENOSPC, "no space left on the device")])
def test_an_unwritable_folder_is_named_with_the_reason(tmp_path, monkeypatch, code, reason):
    import tempfile

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(tmp_path / "out" / ".probe"))

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    with pytest.raises(WriteError, match=rf"^output_dir {tmp_path}/out: cannot write there: {reason} \("):
        check_writable_dir(tmp_path / "out", "output_dir")


def test_atomic_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "d" / "card.json"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two" and os.listdir(path.parent) == ["card.json"]


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "card.json"
    atomic_write_text(path, "old")

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(WriteError, match=rf"^run card {path}: cannot write there: no space left on the device$"):
        atomic_write_bytes(path, b"new", "run card")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["card.json"]


def test_an_atomic_write_under_a_file_is_named(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(WriteError, match=rf"^file {tmp_path}/f/x.txt: cannot write there: {tmp_path}/f is a file, "
                                         r"not a folder$"):
        atomic_write_text(tmp_path / "f" / "x.txt", "text")


def test_write_error_is_a_value_error_with_one_line(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(ValueError) as info:
        check_writable_dir(tmp_path / "out", "output_dir")
    assert "\n" not in str(info.value)


# The tokenized cache.
@pytest.fixture()
def load(tmp_path, data_dir, qwen2_model, train_config, monkeypatch):
    from tunesmith.data.kinds import get_kind
    from tunesmith.data.load import load_training_data
    from tunesmith.model.load import load_tokenizer
    from tunesmith.templates.builtin import get_template

    monkeypatch.setenv("TUNESMITH_CACHE_DIR", str(tmp_path / "cache"))
    cfg = train_config(qwen2_model)
    tok = load_tokenizer(cfg.model)

    def run(caplog):
        from tunesmith.data import cache

        caplog.clear()
        with caplog.at_level(logging.INFO, logger="tunesmith"):
            data = load_training_data(cfg.data, get_kind("supervised"), tok, get_template("qwen3_nothink"), 0)
        cache.wait_for_writes()
        return [(e.input_ids, e.labels) for e in data.train], "loaded from cache" in caplog.text

    return run, tmp_path / "cache"


@pytest.mark.parametrize("damage", ["truncate", "cut_tail", "empty", "flip"])
def test_a_damaged_cache_entry_is_rebuilt_with_a_warning(load, caplog, damage):
    run, folder = load
    first, _ = run(caplog)
    (entry,) = folder.glob("*.npz")
    data = entry.read_bytes()
    damaged = {"truncate": data[: len(data) // 2], "cut_tail": data[:-30], "empty": b"",
               "flip": data[:200] + bytes(b ^ 0xFF for b in data[200:260]) + data[260:]}[damage]
    entry.write_bytes(damaged)
    again, hit = run(caplog)
    assert again == first and not hit
    assert f"tokenized cache {entry} is unreadable (" in caplog.text
    assert "encoding the dataset again and rewriting it" in caplog.text
    assert entry.read_bytes() == data  # rewritten whole
    assert run(caplog) == (first, True)


def test_an_unwritable_cache_folder_warns_in_one_line_and_training_data_is_still_made(load, caplog):
    run, folder = load
    folder.write_text("a file where the cache folder should be")
    first, hit = run(caplog)
    assert first and not hit
    assert (f"tokenized cache {folder}/" in caplog.text and f": cannot write there: {folder} is a file, not a folder; "
            "training goes on without caching it" in caplog.text)


def test_write_error_reads_as_one_line_where_oserrors_are_caught(tmp_path):
    """Also an OSError without errno, strerror or filename: a handler of OSError prints its one line."""
    (tmp_path / "out").write_text("x")
    with pytest.raises(OSError) as info:
        check_writable_dir(tmp_path / "out", "output_dir")
    assert (info.value.errno, info.value.strerror, info.value.filename) == (None, None, None)
