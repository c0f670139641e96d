"""Layering and size rules of the code base, checked mechanically."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tunesmith"

# A package may import only from packages listed for it (and the shared base: config, types, utils).
ALLOWED = {
    "config": set(),
    "utils": set(),
    "templates": {"config"},
    "data": {"config", "templates"},
    "model": {"config", "utils"},
    "stages": {"config", "data", "templates", "model"},
    "train": {"config", "data", "templates", "model", "stages", "utils"},
    "infer": {"config", "templates", "model", "utils"},
    "serve": {"config", "infer", "utils"},
}
BASE = {"types", "utils", "config", "__version__"}  # __version__: the package root


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    package_depth = len(path.relative_to(SRC).parts) - 1
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            up = node.level - 1
            if up >= package_depth and node.module:
                found.add(node.module.split(".")[0])
            elif up >= package_depth:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tunesmith."):
            found.add(node.module.split(".")[1])
    return found


def test_imports_point_downward():
    for package, allowed in ALLOWED.items():
        for path in (SRC / package).rglob("*.py"):
            bad = imports_of(path) - allowed - BASE - {package, "__init__"}
            assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}; allowed: {sorted(allowed | BASE)}"


def test_stages_do_not_import_each_other():
    """Stage modules share code only through base.py and sub-packages (e.g. preference/), never directly."""
    stages = {p.stem for p in (SRC / "stages").glob("*.py")} - {"__init__", "base"}
    for path in (SRC / "stages").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for other in stages - {path.stem}:
            assert f"from .{other} import" not in text and f"from . import {other}" not in text or path.stem == "base"


def test_source_files_stay_small():
    for path in SRC.rglob("*.py"):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= 500, f"{path.relative_to(SRC)} has {lines} lines; split it"
