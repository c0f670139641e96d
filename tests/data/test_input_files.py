"""Data files that are not UTF-8 fail with the file, line and byte offset (training, streaming, preview and
dataset_info.json alike); a UTF-8 BOM is accepted; a dataset whose replies are all empty is warned about."""

from __future__ import annotations

import json
import logging

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.config.load import decode_text
from tunesmith.data.files import iter_jsonl, load_rows, read_file
from tunesmith.data.registry import get_dataset_attrs, parse_entry

ROWS = [{"instruction": "What is 1+1?", "input": "", "output": "2"}, {"instruction": "Hi", "output": "Hello"}]


@pytest.mark.parametrize("data,line,offset", [(b"ab\ncaf\xe9\n", 2, 6), (b"\xef\xbb\xbfab\nc\xe9", 2, 7),
                                              (b"\xff", 1, 0), (b"ok\n\xe2\x82", 2, 3)])
def test_decode_names_line_and_byte_offset(data, line, offset):
    with pytest.raises(ConfigError, match=rf"^f.txt:{line}: not UTF-8 text: byte 0x[0-9a-f]{{2}} at byte offset "
                                          rf"{offset} \("):
        decode_text(data, "f.txt")


def test_decode_drops_a_bom():
    assert decode_text(b"\xef\xbb\xbf[1]", "f") == "[1]"


@pytest.mark.parametrize("name", ["rows.json", "rows.jsonl", "rows.csv", "rows.txt"])
def test_a_bom_is_accepted_in_every_text_format(tmp_path, name):
    path = tmp_path / name
    body = {"rows.json": json.dumps(ROWS), "rows.jsonl": "".join(json.dumps(r) + "\n" for r in ROWS),
            "rows.csv": "instruction,output\nWhat is 1+1?,2\nHi,Hello\n", "rows.txt": "What is 1+1?\nHi\n"}[name]
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    rows = read_file(path, "x")
    first_key = "text" if name.endswith(".txt") else "instruction"
    assert [r[first_key] for r in rows] == ["What is 1+1?", "Hi"]


def test_streamed_jsonl_names_the_line_of_bad_bytes(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"text": "a"}\n{"text": "b"}\n{"text": "\xe9"}\n')
    rows = iter_jsonl(path)
    assert [next(rows), next(rows)] == [{"text": "a"}, {"text": "b"}]
    with pytest.raises(ConfigError, match=rf"^{path}:3: not UTF-8 text: byte 0xe9 at byte offset 38 "):
        next(rows)


def test_a_registry_that_is_not_utf8_is_named(tmp_path):
    (tmp_path / "dataset_info.json").write_bytes('{"x": {"file_name": "caf\u00e9.json"}}'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"dataset_info.json:1: not UTF-8 text: byte 0xe9 at byte offset 24 "):
        get_dataset_attrs(("x",), tmp_path)


def test_a_damaged_parquet_file_is_named(tmp_path):
    path = tmp_path / "rows.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ConfigError, match=rf"^{path}: cannot read it as parquet: "):
        read_file(path, "x")


def test_data_preview_of_a_non_utf8_file_is_one_line(tmp_path, qwen2_model, capsys):
    from tunesmith.cli import main

    (tmp_path / "bad.jsonl").write_bytes('{"instruction": "caf\u00e9", "output": "b"}\n'.encode("latin-1"))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"bad": {"file_name": "bad.jsonl"}}))
    code = main(["data", "preview", f"model_name_or_path={qwen2_model}", "dataset=bad",
                 f"dataset_dir={tmp_path}", "template=qwen3_nothink", "--no-color"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1] == (f"tunesmith: error: {tmp_path}/bad.jsonl:1: not UTF-8 text: byte 0xe9 at byte offset 20 "
                       "(invalid continuation byte); save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)")
    assert "Traceback" not in "\n".join(err)


EMPTY = {
    "alpaca": ([{"instruction": "q", "input": "", "output": ""}] * 3, {}),
    "sharegpt": ([{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": " "}]}] * 3,
                 {"formatting": "sharegpt"}),
    "openai": ([{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]}] * 3,
               {"formatting": "sharegpt", "columns": {"messages": "messages"}}),
    "ranking": ([{"instruction": "q", "chosen": "", "rejected": ""}] * 3,
                {"ranking": True, "columns": {"chosen": "chosen", "rejected": "rejected"}}),
}


@pytest.mark.parametrize("kind", list(EMPTY))
def test_a_dataset_whose_replies_are_all_empty_is_warned_about(tmp_path, caplog, kind):
    rows, entry = EMPTY[kind]
    (tmp_path / "e.json").write_text(json.dumps(rows))
    attr = parse_entry("empty_set", {"file_name": "e.json", **entry}, tmp_path, tmp_path / "dataset_info.json")
    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        load_rows(attr)
    assert (f"dataset empty_set: every reply is empty ({len(rows) * (2 if kind == 'ranking' else 1)} replies in "
            f"{len(rows)} rows): a stage that trains on replies would learn only end-of-turn tokens") in caplog.text


def test_a_dataset_with_a_reply_is_not_warned_about(tmp_path, caplog):
    (tmp_path / "e.json").write_text(json.dumps([{"instruction": "q", "output": ""}, {"instruction": "q",
                                                                                       "output": "a"}]))
    attr = parse_entry("mixed", {"file_name": "e.json"}, tmp_path, tmp_path / "dataset_info.json")
    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        load_rows(attr)
    assert "every reply is empty" not in caplog.text


def test_empty_replies_warn_during_training_data_preparation(tmp_path, qwen2_model, train_config, caplog):
    from tunesmith.data.kinds import get_kind
    from tunesmith.data.load import load_training_data
    from tunesmith.model.load import load_tokenizer
    from tunesmith.templates.builtin import get_template

    (tmp_path / "e.json").write_text(json.dumps(EMPTY["alpaca"][0]))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"empty_set": {"file_name": "e.json"}}))
    cfg = train_config(qwen2_model, dataset="empty_set", dataset_dir=str(tmp_path), overwrite_cache=True)
    from tunesmith.config.errors import ConfigError

    with caplog.at_level(logging.WARNING, logger="tunesmith"), pytest.raises(
            ConfigError, match="dataset `empty_set`: every reply is empty, so only end-of-turn tokens would train"):
        load_training_data(cfg.data, get_kind("supervised"), load_tokenizer(cfg.model), get_template("qwen3_nothink"),
                           0)  # warned while reading, refused once encoded (a reply-training kind)
    assert "dataset empty_set: every reply is empty (3 replies in 3 rows)" in caplog.text
