"""Images and videos in chat and api requests for a vision-language model (Qwen2-VL, Qwen2.5-VL, Qwen3-VL).

A request's media ride on its messages (``{"role": "user", "content": "...", "images": [...], "videos": [...]}``;
an image is a path, bytes, a ``{"path"|"bytes"}`` dict or a PIL image, a video a file path or a list of frame
images). The prompt is built as training builds it: each ``<image>`` / ``<video>`` placeholder is replaced by the
model's vision tokens through the family's plugin (data/media/plugin.py, the template's ``mm_plugin``, else the
model family's; Qwen3-VL writes a timestamp before each temporal patch of a video), with the media keys of the
config (image_max_pixels, video_max_pixels, video_fps, video_maxlen, ...), and the prompt then renders through
the training template. Generation gets the plugin's pixel_values and image_grid_thw, pixel_values_videos and
video_grid_thw (and second_per_grid_ts for Qwen2.5-VL), and the prompt's ``mm_token_type_ids`` (1 at image
tokens, 2 at video tokens); transformers' generate computes the prompt's 3-D rope positions from them, extends
the type ids with zeros (text) for every generated token and places each one a position after the last (as a
full forward pass over prompt + reply would: tests/infer/test_vision_chat.py checks the step scores against one).

The processor files come from the model folder, else from the base model a run card names (a full fine-tune's
output dir holds weights and tokenizer, the processor settings stay the base model's).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from ..config.errors import ConfigError
from ..config.schema import Config
from ..data.media.files import MediaError, image_size, probe_video
from ..data.media.plugin import get_plugin
from ..data.media.settings import MediaSettings
from ..model.processor import load_processor
from ..model.vision import COMPOSITE, model_type
from ..types import Conversation, Message
from .engine import InvalidRequest
from .source import ModelSource

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class PromptMedia:
    """The model inputs of a prompt's images and videos, beside its token ids."""

    features: dict  # pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw, ... (tensors, in order)
    token_types: list[int]  # mm_token_type_ids of the prompt: 1 at image tokens, 2 at video tokens, 0 elsewhere


def processor_dir(source: ModelSource) -> str | None:
    """The folder whose processor settings serve ``source``: the model's own, else the base model its run card
    names (None: not a vision-language model)."""
    if model_type(source.base) not in COMPOSITE:
        return None
    candidates = [source.base]
    card_base = (source.card or {}).get("base_model")
    if card_base and card_base != source.base:
        candidates.append(card_base)
    for folder in candidates:
        if Path(folder, "preprocessor_config.json").is_file():
            return str(folder)
    raise ConfigError(f"{source.base} is a vision-language model ({model_type(source.base)}) without "
                      "preprocessor_config.json (the image processor's settings), and no base model with one is "
                      "recorded; copy preprocessor_config.json (and video_preprocessor_config.json) from the base "
                      "model's folder into it")


class VisionInputs:
    """Expands a conversation's images and videos into vision tokens and builds their model inputs."""

    def __init__(self, plugin, model_type: str, folder: str):
        self.plugin = plugin
        self.model_type = model_type
        self.folder = folder

    @property
    def image_mark(self) -> str:
        return self.plugin.image_placeholder

    @property
    def video_mark(self) -> str:
        return self.plugin.video_placeholder

    def expand(self, conv: Conversation) -> Conversation:
        """``conv`` with each placeholder replaced by its image's or video's vision tokens (InvalidRequest when
        the placeholders and media do not pair up, or a file cannot be read)."""
        try:
            texts = self.plugin.expand([m.content for m in conv.messages], list(conv.images), list(conv.videos), None)
        except MediaError as err:
            raise InvalidRequest(f"{err}; images and videos are given with the messages (image_url and video_url "
                                 "parts in the API, /image PATH, /video PATH, --image PATH or --video PATH in chat)",
                                 "messages") from None
        return replace(conv, messages=tuple(Message(m.role, t) for m, t in zip(conv.messages, texts)))

    def inputs(self, conv: Conversation, ids: list[int]) -> PromptMedia:
        """The media's model inputs and mm_token_type_ids for a prompt's token ids."""
        try:
            features = self.plugin.features(list(conv.images), list(conv.videos), None)
        except MediaError as err:
            raise InvalidRequest(str(err), "messages") from None
        types = self.plugin.token_types(ids)
        merge = self.plugin.processor.image_processor.merge_size
        for kind, grids in ((1, "image_grid_thw"), (2, "video_grid_thw")):
            expected = int(features[grids].prod(-1).sum()) // merge ** 2 if grids in features else 0
            if types.count(kind) != expected:
                raise InvalidRequest(f"the messages hold the vision token {self.plugin.processor.image_token} (or "
                                     f"{self.plugin.processor.video_token}) as text; only `{self.image_mark}` and "
                                     f"`{self.video_mark}` placeholders may stand for images and videos", "messages")
        return PromptMedia(features, types)


def load_vision(cfg: Config, source: ModelSource, tokenizer, template) -> VisionInputs | None:
    """The vision inputs of a vision-language model (None for a text model)."""
    folder = processor_dir(source)
    if folder is None:
        return None
    family = model_type(source.base)
    plugin_name = getattr(template, "mm_plugin", "") or COMPOSITE[family].family
    processor = load_processor(folder, tokenizer)
    plugin = get_plugin(plugin_name, processor, MediaSettings.from_mapping(cfg.media))
    logger.info("Vision-language model (%s): images and videos expand through the %s plugin, processor settings from %s",
                family, plugin_name, folder)
    return VisionInputs(plugin, family, folder)


def image_problem(item) -> str | None:
    """Why ``item`` (a path, bytes, a {"path"|"bytes"} dict, a PIL image) cannot be read as an image, or None."""
    try:
        image_size(item)
    except MediaError as err:
        return str(err)
    return None


def video_problem(vision: VisionInputs, item) -> str | None:
    """Why ``item`` (a video file path or a list of frames) cannot be read as a video by this model's plugin, or
    None (its container metadata is read; frames are decoded when the prompt's inputs are built)."""
    try:
        probe_video(item, None, vision.plugin.settings)
    except MediaError as err:
        return str(err)
    return None
