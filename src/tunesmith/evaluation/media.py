"""The images and videos of evaluation examples for a vision-language model: the loaded model's vision plugin
with the config's media folder (as training reads them: media_dir, else dataset_dir), and the vision inputs of a
left-padded generation batch (pixel values and grids of the rows' media in row order, mm_token_type_ids under
the left-padded prompts, as the chat engine batches image requests)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..config.schema import Config
from ..data.media_context import MediaContext


def evaluation_media(cfg: Config, loaded) -> MediaContext | None:
    """The media context of a loaded vision-language model (None for a text model)."""
    if loaded.vision is None:
        return None
    return MediaContext(loaded.vision.plugin, cfg.media.media_dir or cfg.data.dataset_dir)


def generation_media(media: MediaContext, prompts: Sequence) -> Callable[[list[int], int], dict]:
    """For prompts carrying `prompt` (ids), `images` and `videos`: a function from a batch's prompt indices (in
    row order) and its width to the batch's vision inputs (empty when no row has media)."""

    def inputs(indices: list[int], width: int) -> dict:
        import torch

        images = [image for i in indices for image in prompts[i].images]
        videos = [video for i in indices for video in prompts[i].videos]
        if not images and not videos:
            return {}
        out = dict(media.plugin.features(images, videos, media.base_dir))
        types = torch.zeros((len(indices), width), dtype=torch.long)
        for row, i in enumerate(indices):
            prompt = prompts[i].prompt
            types[row, width - len(prompt):] = torch.tensor(media.plugin.token_types(prompt), dtype=torch.long)
        out["mm_token_type_ids"] = types
        return out

    return inputs
