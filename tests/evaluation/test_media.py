"""The vision inputs of a left-padded prediction batch: the rows' images in row order (grids and pixel values as
the plugin builds them for those images), mm_token_type_ids 1 under each prompt's image tokens and 0 under the
left padding and text; a batch without media gets no inputs; a text model has no media context."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from tunesmith.config.load import build_config
from tunesmith.data.media.plugin import get_plugin
from tunesmith.data.media.settings import MediaSettings
from tunesmith.evaluation.media import evaluation_media, generation_media
from tunesmith.model.processor import load_processor


@dataclass
class Prompt:
    prompt: list[int]
    images: list = field(default_factory=list)
    videos: list = field(default_factory=list)


@pytest.fixture(scope="module")
def plugin(qwen2_vl_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(qwen2_vl_model))
    return get_plugin("qwen2_vl", load_processor(str(qwen2_vl_model), tokenizer), MediaSettings.from_mapping({}))


def test_batch_inputs_follow_the_rows_and_sit_under_left_padded_prompts(plugin, tmp_path):
    small, wide = tmp_path / "small.png", tmp_path / "wide.png"
    Image.new("RGB", (56, 56), (200, 0, 0)).save(small)
    Image.new("RGB", (112, 56), (0, 0, 200)).save(wide)
    pad = plugin.processor.tokenizer.convert_tokens_to_ids(plugin.processor.image_token)
    text = 11
    prompts = [Prompt([text, pad, pad, pad, pad, text], [str(small)]),   # 56x56: 4 tokens after the 2x2 merge
               Prompt([text, text]),
               Prompt([text] + [pad] * 8, [str(wide)])]                 # 112x56: 8 tokens
    inputs = generation_media(SimpleNamespace(plugin=plugin, base_dir=None), prompts)
    def left_padded(indices: list[int]) -> torch.Tensor:  # as generate_batched lays the rows out (pad id 0)
        width = max(len(prompts[i].prompt) for i in indices)
        return torch.tensor([[0] * (width - len(prompts[i].prompt)) + prompts[i].prompt for i in indices])

    batch = inputs([2, 1, 0], left_padded([2, 1, 0]))  # the batch's rows, longest first as prediction orders them
    assert batch["image_grid_thw"].tolist() == [[1, 4, 8], [1, 4, 4]]  # the wide image's row first
    alone = [plugin.features([str(image)], [], None)["pixel_values"] for image in (wide, small)]
    torch.testing.assert_close(batch["pixel_values"], torch.cat(alone))
    assert batch["mm_token_type_ids"].tolist() == [[0] + [1] * 8,
                                                   [0] * 9,
                                                   [0, 0, 0, 0, 1, 1, 1, 1, 0]]
    assert inputs([1], left_padded([1])) == {}  # text only: nothing beside the tokens


def test_a_text_model_has_no_media_context(tmp_path):
    cfg = build_config({"model_name_or_path": ("m", "test"), "dataset_dir": (str(tmp_path), "test")}, purpose="infer")
    assert evaluation_media(cfg, SimpleNamespace(vision=None)) is None
    media = evaluation_media(cfg, SimpleNamespace(vision=SimpleNamespace(plugin="the plugin")))
    assert (media.plugin, media.base_dir) == ("the plugin", str(tmp_path))
