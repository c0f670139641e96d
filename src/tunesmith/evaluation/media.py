"""The images and videos of evaluation examples for a vision-language model: the loaded model's vision plugin
with the config's media folder (as training reads them: media_dir, else dataset_dir), and the vision inputs of a
left-padded generation batch (pixel values and grids of the rows' media in row order, mm_token_type_ids under
the left-padded prompts, as the chat engine batches image requests)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..config.schema import Config
from ..data.collate_media import token_type_ids
from ..data.media_context import MediaContext


def evaluation_media(cfg: Config, loaded) -> MediaContext | None:
    """The media context of a loaded vision-language model (None for a text model)."""
    if loaded.vision is None:
        return None
    return MediaContext(loaded.vision.plugin, cfg.media.media_dir or cfg.data.dataset_dir)


def generation_media(media: MediaContext, prompts: Sequence) -> Callable[[list[int], object], dict]:
    """For prompts carrying `images` and `videos`: a function from a batch's prompt indices (in row order) and its
    left-padded ids to the batch's vision inputs (empty when no row has media)."""

    def inputs(indices: list[int], input_ids) -> dict:
        images = [image for i in indices for image in prompts[i].images]
        videos = [video for i in indices for video in prompts[i].videos]
        if not images and not videos:
            return {}
        out = dict(media.plugin.features(images, videos, media.base_dir))
        out["mm_token_type_ids"] = token_type_ids(media.plugin, input_ids)
        return out

    return inputs
