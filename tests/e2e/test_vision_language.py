"""Vision-language fine-tuning end to end on tiny Qwen-VL models: LLaMA-Factory's qwen3vl examples unchanged but
for the model path, masks against a golden file, what trains and what stays bit-identical, the adapter in vanilla
peft, and bad media rows failing clearly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tunesmith.cli import main
from tunesmith.config.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "llamafactory"
GOLDEN = REPO / "tests" / "golden" / "vl_masks_qwen2_vl.txt"
RLHF_V = {"file_name": "mllm_dpo_demo.json", "ranking": True, "formatting": "sharegpt",  # LLaMA-Factory's columns
          "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected", "images": "images"}}


def repository_root(tmp_path: Path) -> Path:
    """A folder laid out like LLaMA-Factory's repository root: the bundled data under data/, with `rlhf_v` (a hub
    dataset in LLaMA-Factory's registry) registered on the bundled local file of its shape."""
    shutil.copytree(REPO / "data", tmp_path / "data")
    info_path = tmp_path / "data" / "dataset_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8"))
    info["rlhf_v"] = RLHF_V
    info_path.write_text(json.dumps(info), encoding="utf-8")
    return tmp_path


def losses(out: Path) -> list[float]:
    lines = (out / "trainer_log.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["loss"] for line in lines if "loss" in json.loads(line)]


def vl_config(model: Path, root: Path, **overrides):
    from tunesmith.config.load import build_config

    raw = {"model_name_or_path": str(model), "stage": "sft", "do_train": True, "finetuning_type": "lora",
           "lora_target": "all", "dataset": "mllm_demo", "dataset_dir": str(root / "data"), "template": "qwen2_vl",
           "cutoff_len": 512, "output_dir": str(root / "out"), "overwrite_output_dir": True,
           "per_device_train_batch_size": 2, "learning_rate": 1e-2, "max_steps": 16, "logging_steps": 1,
           "save_strategy": "no", "report_to": "none", "seed": 0, "disable_tqdm": True,
           "lr_scheduler_type": "constant"}
    raw.update(overrides)
    return build_config({k: (v, "test") for k, v in raw.items()})


@pytest.mark.parametrize("name,stage,folder", [("qwen3vl_lora_sft.yaml", "sft", "sft"),
                                               ("qwen3vl_lora_dpo.yaml", "dpo", "dpo")])
def test_llamafactory_qwen3vl_examples_run_unchanged(name, stage, folder, qwen3_vl_model, tmp_path, monkeypatch):
    root = repository_root(tmp_path)
    (root / name).write_text((FIXTURES / name).read_text().replace("MODEL_PATH", str(qwen3_vl_model)))
    monkeypatch.chdir(root)
    assert main(["train", name]) == 0
    out = root / "saves/qwen3-vl-4b/lora" / folder
    card = json.loads((out / "tunesmith.json").read_text())
    assert card["stage"] == stage and card["plan"]["multimodal"] and card["plan"]["batching"] == "padded"
    # LLaMA-Factory's step count: ceil(ceil(examples / batch 1) / accumulation 8) x 3 epochs
    assert card["global_step"] == -(-card["examples"] // 8) * 3
    adapter = json.loads((out / "adapter_config.json").read_text())
    targets = adapter["target_modules"]
    assert targets and all("language_model" in t for t in targets)  # freeze_vision_tower: the LM only
    assert len(losses(out)) == card["global_step"] // 10  # logging_steps: 10
    assert card["train_loss"] > 0 and (out / "adapter_model.safetensors").exists()


def test_masks_match_the_golden_file(qwen2_vl_model, tmp_path):
    """Each `<image>` is one vision block of grid/merge² pads; no vision token and no prompt token trains."""
    from tunesmith.data.preview import render_spans
    from tunesmith.train.prepare import prepare_as_planned

    root = repository_root(tmp_path)
    prepared = prepare_as_planned(vl_config(qwen2_vl_model, root))
    shown = "\n\n".join(render_spans(prepared.tokenizer, ex) for ex in prepared.data.train[:2])
    assert shown == GOLDEN.read_text(encoding="utf-8")
    plugin = prepared.media.plugin
    for ex in prepared.data.train:
        vision = [label for token, label in zip(ex.input_ids, ex.labels) if token in plugin.vision_token_ids]
        assert vision and set(vision) == {-100}
        grids = [plugin.image_grid(image, root / "data") for image in ex.images]
        pads = sum(1 for token in ex.input_ids if token == prepared.tokenizer.convert_tokens_to_ids("<|image_pad|>"))
        assert pads == sum(t * h * w for t, h, w in grids) // 4  # merge_size 2


def test_lora_trains_the_language_model_and_reloads_in_vanilla_peft(qwen2_vl_model, tmp_path):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    from tunesmith.train.run import run_training

    root = repository_root(tmp_path)
    cfg = vl_config(qwen2_vl_model, root, max_steps=24)
    run_training(cfg)
    out = root / "out"
    logged = losses(out)
    # a random tiny model's LoRA learns slowly from ln(vocab) ~ 7: about 0.9 in 24 steps here
    assert len(logged) == 24 and sum(logged[-4:]) / 4 < sum(logged[:4]) / 4 - 0.3, logged
    saved = load_file(out / "adapter_model.safetensors")
    assert saved and all("language_model" in name for name in saved)
    base = AutoModelForImageTextToText.from_pretrained(qwen2_vl_model)
    model = PeftModel.from_pretrained(base, out)
    for name, tensor in saved.items():  # peft's own loading puts back exactly what was saved
        loaded = dict(model.named_parameters())[name.replace(".weight", ".default.weight")]
        assert torch.equal(loaded, tensor)


@pytest.mark.parametrize("freeze_vision_tower", [True, False])
def test_full_finetuning_keeps_frozen_parts_bit_identical(freeze_vision_tower, qwen2_vl_model, tmp_path):
    from safetensors.torch import load_file

    from tunesmith.train.run import run_training

    root = repository_root(tmp_path)
    run_training(vl_config(qwen2_vl_model, root, finetuning_type="full", max_steps=4, learning_rate=1e-3,
                           freeze_vision_tower=freeze_vision_tower))
    before = load_file(qwen2_vl_model / "model.safetensors")
    after = load_file(root / "out" / "model.safetensors")
    moved = {name for name in before if not (before[name] == after[name].to(before[name].dtype)).all()}
    vision = {name for name in before if "visual.blocks" in name or "visual.patch_embed" in name}
    merger = {name for name in before if "visual.merger" in name}
    assert merger and not moved & merger  # freeze_multi_modal_projector: true (default)
    assert (root / "out" / "preprocessor_config.json").is_file()  # the output dir serves chat and export alone
    assert any(name.startswith("model.layers.") for name in moved)  # the checkpoint's own key layout
    if freeze_vision_tower:
        assert not moved & vision
    else:
        assert moved & vision


def test_qwen2_5_vl_trains_as_seed_002_configures_it(qwen2_5_vl_model, tmp_path):
    """The user's notes: Qwen2.5-VL-Instruct, template qwen2_vl, lora rank 8 alpha 16 dropout 0, lora_target all,
    batch 2."""
    from tunesmith.train.run import run_training

    root = repository_root(tmp_path)
    run_training(vl_config(qwen2_5_vl_model, root, lora_rank=8, lora_alpha=16, lora_dropout=0.0, max_steps=6))
    assert len(losses(root / "out")) == 6


def test_bad_media_rows_fail_clearly(qwen2_vl_model, tmp_path):
    from tunesmith.train.run import run_training

    root = repository_root(tmp_path)
    rows = json.loads((root / "data" / "mllm_demo.json").read_text())
    rows[1]["images"] = ["mllm_demo_data/missing.jpg"]
    (root / "data" / "mllm_demo.json").write_text(json.dumps(rows))
    with pytest.raises(ConfigError, match=r"dataset `mllm_demo` row 1: .*missing.jpg"):
        run_training(vl_config(qwen2_vl_model, root))
    (root / "data" / "mllm_demo_data" / "broken.jpg").write_bytes(b"not an image")
    rows[1]["images"] = ["mllm_demo_data/broken.jpg"]
    (root / "data" / "mllm_demo.json").write_text(json.dumps(rows))
    with pytest.raises(ConfigError, match=r"dataset `mllm_demo` row 1: .*broken.jpg"):
        run_training(vl_config(qwen2_vl_model, root))
    assert not (root / "out").exists()


def test_vision_language_settings_that_cannot_be_honoured_are_refused(qwen2_vl_model, tmp_path):
    from tunesmith.train.run import run_training

    root = repository_root(tmp_path)
    with pytest.raises(ConfigError, match=r"template `qwen3_nothink` renders text only: set `template: qwen2_vl`"):
        run_training(vl_config(qwen2_vl_model, root, template="qwen3_nothink"))
    with pytest.raises(ConfigError, match=r"`packing` / `neat_packing` with a vision-language model is not supported"):
        run_training(vl_config(qwen2_vl_model, root, packing=True))


def test_examples_whose_vision_tokens_would_be_cut_are_dropped(qwen2_vl_model, tmp_path, caplog):
    from tunesmith.train.prepare import prepare_as_planned

    root = repository_root(tmp_path)
    full = prepare_as_planned(vl_config(qwen2_vl_model, root)).data.train
    lengths = sorted(len(ex.input_ids) for ex in full)
    cut = prepare_as_planned(vl_config(qwen2_vl_model, root, cutoff_len=lengths[0] // 2 + 1,
                                       overwrite_cache=True)).data
    assert cut.stats.dropped_media_cut > 0
    assert "whose image or video tokens cutoff_len" in caplog.text


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen3_vl"])
def test_videos_train(family, request, tmp_path):
    """LLaMA-Factory's mllm_video_demo layout (video files sampled at video_fps, at most video_maxlen frames)."""
    from tunesmith.train.run import run_training

    model = request.getfixturevalue(f"{family}_model")
    root = repository_root(tmp_path)
    run_training(vl_config(model, root, dataset="mllm_video_demo", template=family, max_steps=3,
                           video_max_pixels=16384))
    assert len(losses(root / "out")) == 3


def test_qlora_on_a_vision_language_model(qwen2_vl_model, tmp_path):
    """4-bit bitsandbytes body, LoRA on the language model, images in the batches."""
    pytest.importorskip("bitsandbytes", reason="needs the quantization extra")
    from safetensors.torch import load_file

    from tunesmith.train.run import run_training

    root = repository_root(tmp_path)
    run_training(vl_config(qwen2_vl_model, root, quantization_bit=4, max_steps=4))
    assert len(losses(root / "out")) == 4
    saved = load_file(root / "out" / "adapter_model.safetensors")
    assert saved and all("language_model" in name for name in saved)


def test_prediction_without_training_reads_the_images(qwen2_vl_model, tmp_path):
    import yaml

    root = repository_root(tmp_path)
    keys = {"model_name_or_path": str(qwen2_vl_model), "stage": "sft", "do_predict": True, "eval_dataset": "mllm_demo",
            "dataset_dir": str(root / "data"), "template": "qwen2_vl", "output_dir": str(root / "pred"),
            "predict_with_generate": True, "max_new_tokens": 4, "report_to": "none"}
    (root / "predict.yaml").write_text(yaml.safe_dump(keys))
    assert main(["train", str(root / "predict.yaml")]) == 0
    lines = (root / "pred" / "generated_predictions.jsonl").read_text(encoding="utf-8").splitlines()
    rows = json.loads((root / "data" / "mllm_demo.json").read_text(encoding="utf-8"))
    predicted = [json.loads(line) for line in lines]
    assert [p["label"] for p in predicted] == [row["messages"][-1]["content"] for row in rows]
    # every image of a row stands in its prompt as vision tokens (two in the rows that show two)
    assert [p["prompt"].count("<|vision_start|>") for p in predicted] == [len(row["images"]) for row in rows]
    assert (root / "pred" / "predict_results.json").is_file()


def test_media_datasets_are_cached_and_a_changed_image_is_encoded_again(qwen2_vl_model, tmp_path, caplog):
    """The tokenized cache's key covers the media files (path, size, modification time) and the plugin settings."""
    import logging

    from PIL import Image

    from tunesmith.train.prepare import prepare_as_planned

    root = repository_root(tmp_path)
    caplog.set_level(logging.INFO)
    first = prepare_as_planned(vl_config(qwen2_vl_model, root)).data.train
    from tunesmith.data.cache import wait_for_writes

    wait_for_writes()
    caplog.clear()
    again = prepare_as_planned(vl_config(qwen2_vl_model, root)).data.train
    assert "loaded from cache" in caplog.text
    assert [(e.input_ids, e.labels, e.images) for e in again] == [(e.input_ids, e.labels, e.images) for e in first]
    Image.new("RGB", (200, 120), (9, 9, 9)).save(root / "data" / "mllm_demo_data" / "2.jpg")  # more tokens now
    caplog.clear()
    changed = prepare_as_planned(vl_config(qwen2_vl_model, root)).data.train
    assert "loaded from cache" not in caplog.text
    assert sum(map(len, (e.input_ids for e in changed))) > sum(map(len, (e.input_ids for e in first)))
    caplog.clear()
    prepare_as_planned(vl_config(qwen2_vl_model, root, image_max_pixels=64 * 64))  # settings are in the key too
    assert "loaded from cache" not in caplog.text
