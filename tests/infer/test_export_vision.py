"""`tunesmith export` of a vision-language model: the merged model is written with its processor settings and the
training template, plain transformers' AutoModelForImageTextToText and tunesmith's load_processor load it, and on an
image prompt it gives the logits of the adapter on its base (peft, unmerged); chat on the export answers as chat
on the run. A full fine-tune's export takes the processor settings from its base model."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from tunesmith.cli import main
from tunesmith.config.errors import ConfigError
from tunesmith.config.load import build_config
from tunesmith.data.media.plugin import get_plugin
from tunesmith.infer.export import export_model
from tunesmith.model.processor import load_processor

from .test_vision_chat import QUESTION, colour_images, engine_for, train_colours

PROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json")


@pytest.fixture(scope="module")
def lora_vl_run(tmp_path_factory, qwen2_vl_model):
    return train_colours(tmp_path_factory.mktemp("vl-lora"), qwen2_vl_model, finetuning_type="lora",
                         lora_target="all", lora_rank=8, learning_rate=2e-2, max_steps=4, logging_steps=2)


@pytest.fixture(scope="module")
def exported(lora_vl_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "merged"
    assert main(["export", str(lora_vl_run), f"export_dir={out}"]) == 0
    return out


def image_prompt(folder, image, processor_folder=None) -> dict:
    """Model inputs for a question about ``image``: ``folder``'s tokenizer and its chat template, tunesmith's
    processor of ``processor_folder`` (default: the same folder) for placeholder expansion, pixel values and
    mm_token_type_ids."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    text = tokenizer.apply_chat_template([{"role": "user", "content": f"<image>{QUESTION}"}], tokenize=False,
                                         add_generation_prompt=True)
    plugin = get_plugin("qwen2_vl", load_processor(processor_folder or folder, tokenizer))
    [text] = plugin.expand([text], [image], [])
    ids = tokenizer.encode(text, add_special_tokens=False)
    return {"input_ids": torch.tensor([ids]), "mm_token_type_ids": torch.tensor([plugin.token_types(ids)]),
            **plugin.features([image], [])}


def test_export_loads_in_plain_transformers_with_the_logits_of_adapter_on_base(lora_vl_run, exported, qwen2_vl_model,
                                                                              tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    for name in PROCESSOR_FILES:
        assert json.loads((exported / name).read_text()) == json.loads((qwen2_vl_model / name).read_text())
    assert (exported / "chat_template.jinja").is_file() and (exported / "tokenizer.json").is_file()
    assert json.loads((exported / "config.json").read_text())["model_type"] == "qwen2_vl"

    image = colour_images(tmp_path)["blue"]
    inputs = image_prompt(exported, image)
    assert int(inputs["mm_token_type_ids"].sum()) == 4  # a 56x56 image: 4x4 patches, merged 2x2
    trained = image_prompt(lora_vl_run, image, qwen2_vl_model)  # the run's tokenizer, the base's processor
    assert inputs["input_ids"].tolist() == trained["input_ids"].tolist()
    merged = AutoModelForImageTextToText.from_pretrained(str(exported), dtype=torch.float32).eval()
    assert not any("lora" in name for name, _ in merged.named_parameters())
    base = AutoModelForImageTextToText.from_pretrained(str(qwen2_vl_model), dtype=torch.float32).eval()
    with torch.no_grad():
        plain = base(**inputs).logits
        adapted = PeftModel.from_pretrained(base, str(lora_vl_run)).eval()(**inputs).logits
        logits = merged(**inputs).logits
    assert (adapted - plain).abs().max() > 1e-3  # the adapter changes the answer's logits
    torch.testing.assert_close(logits, adapted, rtol=1e-4, atol=1e-5)


def test_chat_on_the_export_answers_as_on_the_run(lora_vl_run, exported, tmp_path):
    images = colour_images(tmp_path)
    on_export, on_run = engine_for(exported), engine_for(lora_vl_run)
    assert on_export.vision.folder == str(exported)  # the export's own processor settings
    for name in ("red", "blue"):
        ask = [{"role": "user", "content": QUESTION, "images": [str(images[name])]}]
        assert list(on_export.prompt_ids(ask)) == list(on_run.prompt_ids(ask))
        assert on_export.chat(ask).text == on_run.chat(ask).text


def test_full_fine_tune_export_takes_processor_settings_from_its_base(tmp_path_factory, qwen2_vl_model):
    run = train_colours(tmp_path_factory.mktemp("vl-full"), qwen2_vl_model, max_steps=1)
    (run / "preprocessor_config.json").unlink()  # a run dir without them (written before runs kept them)
    out = tmp_path_factory.mktemp("export-full") / "model"
    assert main(["export", str(run), f"export_dir={out}"]) == 0
    for name in PROCESSOR_FILES:
        assert json.loads((out / name).read_text()) == json.loads((qwen2_vl_model / name).read_text())
    assert engine_for(out).vision.folder == str(out)
    keys = {"model_name_or_path": str(run), "export_dir": str(tmp_path_factory.mktemp("q") / "q"),
            "export_quantization_bit": 4, "export_quantization_dataset": "calibration.txt"}
    with pytest.raises(ConfigError, match="export_quantization_bit.*a vision-language model is exported unquantized"):
        export_model(build_config({k: (v, "test") for k, v in keys.items()}, purpose="export"))
