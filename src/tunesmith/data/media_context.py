"""The media of a run's rows, between the formats (a Conversation's images and videos, as the data gives them)
and the model (vision tokens in the text, pixel tensors in the batch): the vision plugin of the model's family
(data/media/plugin.py) and the folder relative media paths are read from (media_dir, else dataset_dir).

Expansion replaces each `<image>` / `<video>` placeholder by the model's vision tokens, as many as the processor
will produce features for; those tokens never train. An example whose vision tokens `cutoff_len` would cut is
dropped and counted (its features would no longer match its tokens)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..config.errors import ConfigError
from ..types import IGNORE_INDEX, Conversation, Message


def no_media_model(name: str, index: int, conv: Conversation) -> ConfigError:
    kinds = " and ".join(k for k, v in (("images", conv.images), ("videos", conv.videos)) if v)
    return ConfigError(f"dataset `{name}` row {index}: has {kinds}, but the model has no vision processor: train "
                       "media with a vision-language model (Qwen2-VL, Qwen2.5-VL, Qwen3-VL) and its template "
                       "(qwen2_vl, qwen3_vl, qwen3_vl_nothink), or drop the media columns from the dataset's "
                       "dataset_info.json entry")


@dataclass(frozen=True)
class MediaContext:
    plugin: object  # data.media.plugin.VisionPlugin
    base_dir: str

    @property
    def vision_ids(self) -> frozenset[int]:
        return frozenset(self.plugin.vision_token_ids)

    def describe(self) -> str:
        """What the expansion depends on (for the tokenized cache's key)."""
        return repr((self.plugin.name, self.plugin.settings, self.base_dir))

    def expand(self, conv: Conversation, name: str, index: int) -> Conversation:
        """``conv`` with its placeholders replaced by the model's vision tokens."""
        from .media.files import MediaError

        if not conv.has_media:
            return conv
        try:
            texts = self.plugin.expand([m.content for m in conv.messages], list(conv.images), list(conv.videos),
                                       self.base_dir)
        except MediaError as err:
            raise ConfigError(f"dataset `{name}` row {index}: {err}") from None
        return replace(conv, messages=tuple(Message(m.role, t) for m, t in zip(conv.messages, texts)))

    def fingerprint(self, rows: list[dict], columns: list[str]) -> str | None:
        """A digest of what the expansion of these rows depends on besides their text: the plugin and its settings,
        and each media file's path, size and modification time (a changed image changes its token count). None
        when an item is not a file path (bytes, decoded images): such rows are not cached."""
        import hashlib

        digest = hashlib.blake2b(self.describe().encode(), digest_size=16)
        for row in rows:
            for column in columns:
                value = row.get(column)
                for item in (value if isinstance(value, (list, tuple)) else [] if value is None else [value]):
                    if not isinstance(item, str):
                        return None
                    path = Path(item) if Path(item).is_absolute() else Path(self.base_dir) / item
                    try:
                        stat = path.stat()
                        digest.update(f"{item}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
                    except OSError:
                        digest.update(f"{item}\0missing\n".encode())
        return digest.hexdigest()

    def mask(self, input_ids: list[int], labels: list[int]) -> list[int]:
        """Labels with every vision token ignored."""
        ids = self.vision_ids
        return [IGNORE_INDEX if token in ids else label for token, label in zip(input_ids, labels)]

    def count(self, input_ids: list[int]) -> int:
        ids = self.vision_ids
        return sum(1 for token in input_ids if token in ids)


def expand_all(convs, media: MediaContext | None, name: str, row_ids=None) -> list[Conversation]:
    """Every conversation expanded; a conversation with media and no vision processor is refused by row."""
    out = []
    for n, conv in enumerate(convs):
        index = row_ids[n] if row_ids is not None else n
        if conv.has_media and media is None:
            raise no_media_model(name, index, conv)
        out.append(media.expand(conv, name, index) if media is not None and conv.has_media else conv)
    return out
