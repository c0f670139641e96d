"""Every kind of bad data fails with one clear message naming file/line or row/column, and nothing is
written to output_dir."""

from __future__ import annotations

import json

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.train.run import run_training


# LLaMA-Factory's data/mllm_demo.json layout (its registry entry is the first multimodal case below).
MLLM_DEMO = [{"messages": [{"content": "<image>Who are they?", "role": "user"},
                           {"content": "They're Kane and Gretzka from Bayern Munich.", "role": "assistant"}],
              "images": ["mllm_demo_data/1.jpg"]}]

CASES = [
    ("broken.json", '[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c" "output": "d"}\n]', None,
     r"broken.json:3: invalid JSON"),
    ("broken.jsonl", '{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": "b"}\n{"instruction": }\n',
     None, r"broken.jsonl:3: invalid JSON line"),
    ("missing.json", json.dumps([{"instruction": "a", "output": "b"}, {"instruction": "c", "answer": "d"}]), None,
     r"dataset `bad` row 1: missing column `output` \(the `response` column\); the row has: answer, instruction"),
    ("typed.json", json.dumps([{"instruction": "a", "output": ["b"]}]), None,
     r"dataset `bad` row 0: column `output` \(the `response` column\) must be str or int or float, got list"),
    ("empty.json", "[]", None, r"dataset `bad` \(.*empty.json\) is empty"),
    ("order.json", json.dumps([{"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]}]),
     {"formatting": "sharegpt"},
     r"dataset `bad` row 0: turn 1 is `human` \(user\) but a assistant/function turn was expected"),
    ("roles.json", json.dumps([{"conversations": [{"from": "human", "value": "a"}, {"from": "bot", "value": "b"}]}]),
     {"formatting": "sharegpt"}, r"dataset `bad` row 0: turn 1 has unknown role 'bot'"),
    ("open.json", json.dumps([{"conversations": [{"from": "human", "value": "a"}]}]), {"formatting": "sharegpt"},
     r"dataset `bad` row 0: the conversation ends with a user turn"),
    ("nope.json", None, None, r"dataset `bad`: file .*nope.json not found"),
    # Media for a text-only model: refused by row, never trained as text without its media.
    ("mllm_demo.json", json.dumps(MLLM_DEMO),
     {"formatting": "sharegpt", "columns": {"messages": "messages", "images": "images"},
      "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}},
     r"dataset `bad` row 0: has images, but the model has no vision processor: train media with a vision-language "
     r"model \(Qwen2-VL, Qwen2.5-VL, Qwen3-VL\) and its template"),
    # Placeholders and media must pair up, as in LLaMA-Factory.
    ("videos.json", json.dumps([{"messages": [{"content": "<video>What happens?", "role": "user"},
                                              {"content": "A ball rolls.", "role": "assistant"}],
                                 "clips": ["a.mp4", "b.mp4"]}]),
     {"formatting": "sharegpt", "columns": {"messages": "messages", "videos": "clips"},
      "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}},
     r"dataset `bad` row 0: 1 `<video>` placeholder\(s\) in the messages but 2 video\(s\) \(column `clips`\); put "
     r"one `<video>` in the messages where each video goes"),
    ("placeholder.json", json.dumps([{"messages": MLLM_DEMO[0]["messages"]}]),
     {"formatting": "sharegpt", "columns": {"messages": "messages"},
      "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}},
     r"dataset `bad` row 0: 1 `<image>` placeholder\(s\) in the messages but 0 image\(s\) \(no `images` column "
     r"mapped in dataset_info.json\); map the `images` column .* or, if `<image>` is plain text in this data, set "
     r"IMAGE_PLACEHOLDER"),
    ("audio.json", json.dumps([{"instruction": "<audio>Transcribe this.", "output": "hello"}]), None,
     r"dataset `bad` row 0: audio inputs are not supported"),
    # Bytes that are not UTF-8: the file, line and byte offset, never a UnicodeDecodeError traceback.
    ("latin1.json", '[{"instruction": "caf\u00e9", "output": "b"}]'.encode("latin-1"), None,
     r"^.*latin1.json:1: not UTF-8 text: byte 0xe9 at byte offset 21 \(invalid continuation byte\); save the file "
     r"as UTF-8"),
    ("latin1.jsonl", b'{"instruction": "a", "output": "b"}\n' + '{"instruction": "\u00e9", "output": "b"}\n'.encode(
        "latin-1"), None, r"^.*latin1.jsonl:2: not UTF-8 text: byte 0xe9 at byte offset 53 "),
    ("latin1.csv", "instruction,output\na,b\nc,d\u00e9\n".encode("latin-1"), None,
     r"^.*latin1.csv:3: not UTF-8 text: byte 0xe9 at byte offset 26 "),
    # A null value is a null value, not a missing column.
    ("null.json", json.dumps([{"instruction": "a", "input": "", "output": "b"},
                              {"instruction": None, "input": "", "output": "b"}]), None,
     r"^dataset `bad` row 1: column `instruction` \(the `prompt` column\) is null; give it a value in this row, or "
     r"remove the row$"),
    ("null_reply.json", json.dumps([{"instruction": "a", "output": None}]), None,
     r"^dataset `bad` row 0: column `output` \(the `response` column\) is null"),
    # `columns` must be a mapping; before, a string was read letter by letter ("unknown column role `p`").
    ("cols.json", json.dumps([{"instruction": "a", "output": "b"}]), {"columns": "prompt"},
     r"dataset_info.json: dataset `bad`: `columns` must be a mapping of role -> column name, e.g. "
     r"\{\"prompt\": \"instruction\"\}; got str 'prompt'$"),
    ("cols.json", json.dumps([{"instruction": "a", "output": "b"}]), {"columns": {"prompt": ["instruction"]}},
     r"dataset `bad`: `columns` maps `prompt` to \['instruction'\]; a column name is a string$"),
    ("tags.json", json.dumps([{"instruction": "a", "output": "b"}]), {"formatting": "sharegpt", "tags": ["role"]},
     r"dataset `bad`: `tags` must be a mapping of tag -> message key"),
    ("flag.json", json.dumps([{"instruction": "a", "output": "b"}]), {"ranking": "false"},
     r"dataset `bad`: `ranking` must be true or false, got 'false'$"),
    # Ranking data trained as conversations (sft): said so, not "missing column" or "ends with a user turn".
    ("rank.json", json.dumps([{"instruction": "a", "input": "", "chosen": "b", "rejected": "c"}]), None,
     r"^dataset `bad` row 0: this is a ranking dataset \(chosen/rejected columns, no `output`\): train it with a "
     r"preference stage \(rm, dpo\) and `ranking: true` in its dataset_info.json entry, or give each row its reply "
     r"in `output`$"),
    ("rank_sg.json", json.dumps([{"conversations": [{"from": "human", "value": "a"}],
                                  "chosen": {"from": "gpt", "value": "b"}, "rejected": {"from": "gpt", "value": "c"}}]),
     {"formatting": "sharegpt", "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}},
     r"^dataset `bad` row 0: this is a ranking dataset \(chosen/rejected columns; `conversations` ends with a user "
     r"turn\): train it with a preference stage \(rm, dpo\) and `ranking: true` in its dataset_info.json entry, or "
     r"end each conversation with its reply$"),
    ("rank_flag.json", json.dumps([{"instruction": "a", "output": "b", "chosen": "b", "rejected": "c"}]),
     {"ranking": True, "columns": {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"}},
     r"^dataset `bad`: this is a ranking dataset \(`ranking: true` in dataset_info.json\): train it with a "
     r"preference stage \(rm, dpo\), or remove `ranking: true` from its entry to train on one reply per row$"),
]


@pytest.mark.parametrize("filename,content,entry,message", CASES, ids=[c[0] for c in CASES])
def test_bad_data_fails_clearly_and_writes_nothing(filename, content, entry, message, tmp_path, qwen2_model,
                                                   train_config):
    root = tmp_path / "data"
    root.mkdir()
    if isinstance(content, bytes):
        (root / filename).write_bytes(content)
    elif content is not None:
        (root / filename).write_text(content, encoding="utf-8")
    (root / "dataset_info.json").write_text(json.dumps({"bad": {"file_name": filename, **(entry or {})}}))
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=message):
        run_training(train_config(qwen2_model, dataset="bad", dataset_dir=str(root), output_dir=str(out)))
    assert not out.exists()


def test_unknown_dataset_suggests_names(data_dir, qwen2_model, train_config):
    with pytest.raises(ConfigError, match=r"dataset `arihm` is not in .*dataset_info.json; did you mean arith"):
        run_training(train_config(qwen2_model, dataset="arihm"))


def test_hub_dataset_fails_offline_with_a_clear_message(data_dir, qwen2_model, train_config, hf_cache, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"^dataset `remote` \(`hf_hub_url` `someone/some-data`, split `train`\) is "
                                          r"not available: downloads are off \(HF_HUB_OFFLINE=1.*\), and it is not in "
                                          r"the local Hugging Face cache .* `hf download someone/some-data --repo-type "
                                          r"dataset`"):
        run_training(train_config(qwen2_model, dataset="remote", output_dir=str(out)))
    assert not out.exists()


def test_a_multimodal_hub_dataset_is_refused_before_any_download(tmp_path, qwen2_model, train_config):
    """LLaMA-Factory's llava_1k_en entry, verbatim: refused from the registry alone."""
    root = tmp_path / "data"
    root.mkdir()
    entry = {"hf_hub_url": "BUAADreamer/llava-en-zh-2k", "subset": "en", "formatting": "sharegpt",
             "columns": {"messages": "messages", "images": "images"},
             "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}}
    (root / "dataset_info.json").write_text(json.dumps({"llava_1k_en": entry}))
    with pytest.raises(ConfigError, match=r"dataset `llava_1k_en`: maps the `images` column \(`images`\), but "
                                          r"the model has no vision processor"):
        run_training(train_config(qwen2_model, dataset="llava_1k_en", dataset_dir=str(root)))


def test_a_placeholder_that_is_plain_text_passes_with_llamafactorys_variable(monkeypatch):
    from tunesmith.data.formats import to_conversation
    from tunesmith.data.registry import parse_entry
    from pathlib import Path

    attr = parse_entry("html", {"file_name": "x.json"}, Path("."), Path("dataset_info.json"))
    row = {"instruction": "What does <video> do in HTML?", "output": "It embeds a video."}
    with pytest.raises(ConfigError, match=r"row 3: 1 `<video>` placeholder\(s\) in the messages but 0 video\(s\).*set "
                                          r"VIDEO_PLACEHOLDER to a marker the data does not use"):
        to_conversation(attr, row, 3)
    monkeypatch.setenv("VIDEO_PLACEHOLDER", "<|video_pad|>")
    assert to_conversation(attr, row, 3).messages[0].content == row["instruction"]


def test_bad_registry_entry(tmp_path, qwen2_model, train_config):
    root = tmp_path / "data"
    root.mkdir()
    (root / "dataset_info.json").write_text(json.dumps({"x": {"file_name": "x.json", "colums": {}}}))
    with pytest.raises(ConfigError, match=r"dataset_info.json: dataset `x`: unknown field `colums`; did you mean "
                                          r"`columns`"):
        run_training(train_config(qwen2_model, dataset="x", dataset_dir=str(root)))


def test_cutoff_too_small_drops_everything(qwen2_model, train_config):
    with pytest.raises(ConfigError, match=r"no example has a trained token after encoding \(8 of 8 dropped; "
                                          r"is `cutoff_len` \(2\) too small\?\)"):
        run_training(train_config(qwen2_model, cutoff_len=2))
