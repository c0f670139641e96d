"""Batches of a vision-language run: the tokens as the inner collator lays them out, plus the vision inputs of
the batch's images and videos (pixel values, grids) in the order of their vision tokens across the rows.

Pair batches (B pairs -> chosen rows, then rejected rows) show each prompt's media twice: once per row."""

from __future__ import annotations

from .media_context import MediaContext


class MediaCollator:
    def __init__(self, inner, media: MediaContext, pairs: bool = False) -> None:
        self.inner = inner
        self.media = media
        self.repeats = 2 if pairs else 1

    def __call__(self, items: list[dict]) -> dict:
        batch = self.inner(items)
        images = [image for item in items for image in item.get("images") or ()] * self.repeats
        videos = [video for item in items for video in item.get("videos") or ()] * self.repeats
        if images or videos:
            batch.update(self.media.plugin.features(images, videos, self.media.base_dir))
            batch["mm_token_type_ids"] = token_type_ids(self.media.plugin, batch["input_ids"])
        return batch


def token_type_ids(plugin, input_ids):
    """mm_token_type_ids of a padded (B, T) batch, padded on either side: which positions are image (1) or video
    (2) tokens, which the model's 3-D rope positions read; padding is text (0)."""
    import torch

    return torch.tensor([plugin.token_types(row) for row in input_ids.tolist()], dtype=torch.long)
