"""`tunesmith export`: merged weights equal base + adapter, shards of the chosen size, the training template as
the exported tokenizer's chat_template, stop tokens in generation_config.json, vanilla transformers loading,
atomic writes, and LLaMA-Factory's merge_lora config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tunesmith.cli import main
from tunesmith.data.encode import encode_supervised
from tunesmith.infer.engine import to_conversation
from tunesmith.templates.builtin import get_template

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "llamafactory"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 1+1?"},
            {"role": "assistant", "content": "1+1=2"}, {"role": "user", "content": "What is 2+3?"},
            {"role": "assistant", "content": "2+3=5"}, {"role": "user", "content": "And <tool> 4+4?"}]


def reference(run: Path, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(base, base + adapter unmerged) logits, loaded the plain peft way."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    card = json.loads((run / "tunesmith.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(card["base_model"], dtype=torch.float32)
    model.resize_token_embeddings(card["embedding_rows"], mean_resizing=False)
    with torch.no_grad():
        base = model(torch.tensor([ids])).logits
        return base, PeftModel.from_pretrained(model, run)(torch.tensor([ids])).logits


@pytest.mark.parametrize("run_name", ["lora_run", "lora_tokens_run"])
def test_export_is_a_plain_model_equal_to_base_plus_adapter(run_name, request, tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    run = request.getfixturevalue(run_name)
    out = tmp_path / "merged"
    assert main(["export", str(run), f"export_dir={out}", "export_size=0.0003"]) == 0
    assert f"exported to {out}" in capsys.readouterr().out
    shards = sorted(out.glob("model-*.safetensors"))
    assert len(shards) >= 2 and (out / "model.safetensors.index.json").exists()
    assert all(p.stat().st_size <= 0.0003 * 10**9 for p in shards)
    assert not list(tmp_path.glob(".merged*"))  # the temporary folder was renamed into place

    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert not any("lora" in name for name, _ in model.named_parameters())

    # the exported chat_template renders exactly training's prompt ids, multi-turn
    ids = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True, return_dict=True)
    ids = list(ids["input_ids"])
    template = get_template("qwen3_nothink")
    trained = to_conversation(MESSAGES + [{"role": "assistant", "content": "4+4=8"}], for_reply=False)
    [example], _ = encode_supervised([trained], tokenizer, template, cutoff_len=1024)
    assert example.input_ids[:len(ids)] == ids and example.labels[len(ids)] != -100
    if run_name == "lora_tokens_run":
        assert tokenizer.convert_tokens_to_ids("<tool>") in ids  # the added token survives as one token

    with torch.no_grad():
        merged = model(torch.tensor([ids])).logits
    vocab = len(tokenizer)
    base, adapted = reference(run, ids)
    torch.testing.assert_close(merged[..., :vocab], adapted[..., :vocab], rtol=1e-4, atol=1e-4)
    assert (merged[..., :vocab] - base[..., :vocab]).abs().max() > 1e-2  # the adapter did change the model

    generation = GenerationConfig.from_pretrained(out)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end in generation.eos_token_id and generation.pad_token_id == tokenizer.pad_token_id
    reply = model.generate(torch.tensor([ids]), max_new_tokens=40, do_sample=False)[0, len(ids):].tolist()
    assert im_end not in reply[:-1]  # vanilla generate stops at the end-of-turn token
    card = json.loads((out / "tunesmith.json").read_text())
    assert card["is_adapter"] is False and card["template"] == "qwen3_nothink"


def test_export_dir_is_never_clobbered_and_failures_leave_nothing(lora_run, tmp_path, monkeypatch, capsys):
    from tunesmith.infer import export

    out = tmp_path / "merged"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", str(lora_run), f"export_dir={out}"]) == 2
    assert "exists and is not empty; set `overwrite_export_dir: true`" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export, "write_generation_config", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        main(["export", str(lora_run), f"export_dir={tmp_path / 'other'}"])
    assert not (tmp_path / "other").exists() and not list(tmp_path.glob(".other*"))
    monkeypatch.undo()

    assert main(["export", str(lora_run), f"export_dir={out}", "overwrite_export_dir=true"]) == 0
    assert not (out / "keep.txt").exists() and (out / "config.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged"]
    # an earlier export is replaced without the key (LLaMA-Factory's merge examples share one export_dir)
    before = (out / "tunesmith.json").read_text()
    assert main(["export", str(lora_run), f"export_dir={out}"]) == 0
    assert "holds an earlier tunesmith export" in capsys.readouterr().err
    assert (out / "tunesmith.json").read_text() != before or (out / "config.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged"]


def test_export_writes_an_ollama_modelfile(lora_run, tmp_path):
    assert main(["export", str(lora_run), f"export_dir={tmp_path / 'm'}"]) == 0
    text = (tmp_path / "m" / "Modelfile").read_text()
    assert text.splitlines()[2] == "FROM ."
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    assert template == ('{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ range .Messages }}'
                        '{{ if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n<|im_start|>assistant\n'
                        '{{ else if eq .Role "assistant" }}{{ .Content }}<|im_end|>\n{{ end }}{{ end }}')
    assert 'PARAMETER stop "<|im_end|>"' in text and text.endswith("PARAMETER num_ctx 4096\n")


@pytest.mark.parametrize("argv,message", [
    (["export"], "usage: tunesmith export"),
    (["export", "model_name_or_path=m"], "`export_dir` is required"),
    (["export", "model_name_or_path=m", "export_dir=o", "export_legacy_format=true"], "safetensors only"),
    (["export", "model_name_or_path=m", "export_dir=o", "export_hub_model_id=me/x"], "never uploads"),
    (["export", "model_name_or_path=m", "export_dir=o", "export_size=0"], "`export_size` (GB per shard)"),
    (["export", "model_name_or_path=m", "export_dir=o", "export_quantization_bit=4"],
     "needs `export_quantization_dataset`"),
])
def test_export_usage_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("tunesmith: error: ") and message in err and len(err.strip().splitlines()) == 1


def test_full_finetuned_output_dir_exports_too(lora_run, tmp_path):
    merged = tmp_path / "merged"
    assert main(["export", str(lora_run), f"export_dir={merged}"]) == 0
    again = tmp_path / "again"  # an export (no adapter, a run card of its own) exports unchanged
    assert main(["export", str(merged), f"export_dir={again}"]) == 0
    from safetensors.torch import load_file

    first, second = load_file(merged / "model.safetensors"), load_file(again / "model.safetensors")
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_llamafactory_merge_lora_config_runs_unchanged(lora_run, qwen2_model, tmp_path, monkeypatch):
    shutil.copytree(lora_run, tmp_path / "saves/qwen3-4b/lora/sft")
    config = tmp_path / "qwen3_lora_sft.yaml"
    config.write_text((FIXTURES / "merge_lora/qwen3_lora_sft.yaml").read_text().replace("MODEL_PATH",
                                                                                       str(qwen2_model)))
    monkeypatch.chdir(tmp_path)
    assert main(["export", config.name]) == 0
    assert (tmp_path / "saves/qwen3_sft_merged/model.safetensors").exists()
    assert main(["chat", "saves/qwen3_sft_merged", "--query", "What is 1+1?", "max_new_tokens=4"]) == 0
