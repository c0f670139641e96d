"""Where the UI may read and write: under the working directory, or under a folder allowed with --allow-path."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..config.errors import ConfigError


def looks_like_hub_id(value: str, workdir: Path) -> bool:
    """`org/name` that is not a local path (./x, /x, ~/x and a/b/c are always local, as model loading reads
    them) and does not exist in the working directory."""
    if value.startswith((".", "/", "~")) or value.count("/") != 1 or os.sep != "/" and os.sep in value:
        return False
    return not (workdir / value).exists()


@dataclass(frozen=True)
class PathPolicy:
    """Paths the UI hands to a run (model, adapters, dataset_dir, output_dir, export_dir, saved YAML) must
    resolve (symlinks followed, `..` collapsed) under ``workdir`` or one of ``allowed``."""

    workdir: Path
    allowed: tuple[Path, ...] = field(default=())

    @classmethod
    def create(cls, workdir: str | Path | None = None, allowed: tuple[str | Path, ...] = ()) -> PathPolicy:
        return cls(Path(workdir or os.getcwd()).resolve(), tuple(Path(p).expanduser().resolve() for p in allowed))

    @property
    def roots(self) -> tuple[Path, ...]:
        return (self.workdir, *self.allowed)

    def resolve(self, value: str | Path) -> Path:
        path = Path(value).expanduser()
        return (path if path.is_absolute() else self.workdir / path).resolve()

    def check(self, value: str | Path, what: str) -> Path:
        """The resolved path, or ConfigError naming the field, the path and how to allow it."""
        if value is None or str(value).strip() == "":
            raise ConfigError(f"`{what}` is empty: give a path under {self.workdir}")
        path = self.resolve(str(value).strip())
        if any(path == root or root in path.parents for root in self.roots):
            return path
        where = ", ".join(str(r) for r in self.roots)
        raise ConfigError(f"`{what}`: {path} is outside the folders this UI may use ({where}); start the UI with "
                          f"`--allow-path {path.parent}` to allow it, or choose a path under {self.workdir}")

    def check_model(self, value: str, what: str = "model_name_or_path") -> str:
        """A hub id passes as it is; a local path must be allowed."""
        value = (value or "").strip()
        if value and looks_like_hub_id(value, self.workdir):
            return value
        return str(self.check(value, what))
