"""Layering and size rules of the code base, checked mechanically: imports point downward and form no circle
(also inside packages), library internals are touched only in model/compat.py, stages are declared (never
probed), data/ never names a stage, and files stay small."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tunesmith"
COMPAT = SRC / "model" / "compat.py"
STAGE_NAMES = {"pt", "sft", "rm", "ppo", "dpo", "kto", "grpo"}

# A package may import only from packages listed for it (and the shared base: config, types, utils).
ALLOWED = {
    "config": set(),
    "utils": set(),
    "templates": {"config"},
    "data": {"config", "templates"},
    "model": {"config", "utils"},
    "stages": {"config", "data", "templates", "model"},
    "train": {"config", "data", "templates", "model", "stages", "utils"},
    "infer": {"config", "data", "templates", "model", "utils"},  # data: the vision plugin that expands images
    "serve": {"config", "infer", "utils"},
    "webui": {"config", "data", "templates", "infer", "utils"},  # runs training as a subprocess, never imports train
    "evaluation": {"config", "data", "templates", "model", "stages", "train", "infer", "utils"},
}
BASE = {"types", "utils", "config", "__version__"}  # __version__: the package root


def sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


@cache
def tree_of(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(path: Path, node: ast.ImportFrom) -> list[str]:
    """Absolute tunesmith module names an import statement may load (the module, or its imported names
    when they are submodules)."""
    if node.level:
        package = module_name(path).split(".")
        if path.name != "__init__.py":
            package = package[:-1]
        base = package[:len(package) - node.level + 1]
        module = ".".join(base + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    if not module.startswith("tunesmith"):
        return []
    return [module] + [f"{module}.{alias.name}" for alias in node.names]


def imports_of(path: Path) -> set[str]:
    """Top-level tunesmith packages (or root modules) that a file imports, lazily or not."""
    found = set()
    for node in ast.walk(tree_of(path)):
        if isinstance(node, ast.ImportFrom):
            for name in resolve(path, node)[:1]:
                parts = name.split(".")
                found.update(alias.name for alias in node.names) if len(parts) == 1 else found.add(parts[1])
    return found


def file_graph() -> dict[str, set[str]]:
    """module -> the tunesmith modules (files) it imports, at module level or inside functions."""
    known = {module_name(p) for p in sources()}
    graph: dict[str, set[str]] = {}
    for path in sources():
        edges = set()
        for node in ast.walk(tree_of(path)):
            if isinstance(node, ast.ImportFrom):
                edges.update(name for name in resolve(path, node) if name in known)
        graph[module_name(path)] = edges - {module_name(path)}
    return graph


def test_imports_point_downward():
    for package, allowed in ALLOWED.items():
        for path in (SRC / package).rglob("*.py"):
            bad = imports_of(path) - allowed - BASE - {package, "__init__"}
            assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}; allowed: {sorted(allowed | BASE)}"


def test_no_import_circles_between_files():
    graph = file_graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_stages_do_not_import_each_other():
    """Stage modules share code only through base.py and sub-packages (e.g. preference/); the registry is the
    one module that imports them all."""
    stages = {f"tunesmith.stages.{p.stem}" for p in (SRC / "stages").glob("*.py")} - {
        "tunesmith.stages.__init__", "tunesmith.stages.base", "tunesmith.stages.registry"}
    graph = file_graph()
    for module in stages:
        assert not graph[module] & stages, f"{module} imports {sorted(graph[module] & stages)}"


def own_private_names() -> set[str]:
    """Underscore names tunesmith defines itself (functions, classes, attributes it assigns)."""
    names = set()
    for path in sources():
        for node in ast.walk(tree_of(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return {n for n in names if n.startswith("_")}


def private_touches(path: Path, own: set[str]) -> list[str]:
    found = []
    for node in ast.walk(tree_of(path)):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__") \
                and node.attr not in own:
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and not node.level and not (node.module or "").startswith("tunesmith"):
            module = node.module or ""
            names = [a.name for a in node.names]
            if any(p.startswith("_") and not p.startswith("__") for p in module.split(".")) or \
                    any(n.startswith("_") and not n.startswith("__") for n in names):
                found.append(f"line {node.lineno}: from {module} import {', '.join(names)}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if any(p.startswith("_") and not p.startswith("__") for p in alias.name.split(".")):
                    found.append(f"line {node.lineno}: import {alias.name}")
    return found


def test_library_internals_are_touched_only_in_compat():
    own = own_private_names()
    for path in sources():
        if path == COMPAT:
            continue
        touches = private_touches(path, own)
        assert not touches, f"{path.relative_to(SRC)} touches library internals ({touches}); add an entry to " \
                            "model/compat.py with why, the versions checked and a test"


def test_private_library_methods_are_overridden_only_in_compat():
    """A method named like a private method of Trainer, TrainerCallback or nn.Module replaces library
    internals: only model/compat.py may do that (TrainerHooks maps them onto public hook names)."""
    import torch
    from transformers import Trainer, TrainerCallback

    for path in sources():
        if path == COMPAT:
            continue
        for node in ast.walk(tree_of(path)):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("_") and not node.name.startswith("__"):
                hit = [cls.__name__ for cls in (Trainer, TrainerCallback, torch.nn.Module) if hasattr(cls, node.name)]
                assert not hit, f"{path.relative_to(SRC)} line {node.lineno} overrides {hit[0]}.{node.name}"


def test_compat_touches_are_the_ones_it_declares():
    """The check above can fail: compat.py itself is full of what it would flag."""
    assert private_touches(COMPAT, own_private_names())


def test_train_and_stages_never_probe_for_attributes():
    """No hasattr, no getattr with a literal attribute name: what a stage (or a model wrapper) offers is
    declared (stages/base.py) or looked up in model/compat.py."""
    for package in ("train", "stages"):
        for path in (SRC / package).rglob("*.py"):
            for node in ast.walk(tree_of(path)):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
                        "hasattr", "getattr"):
                    literal = len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
                    assert node.func.id == "getattr" and not literal, \
                        f"{path.relative_to(SRC)} line {node.lineno}: {node.func.id} probes an attribute"


def string_comparisons(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree_of(path)):
        if isinstance(node, ast.Compare):
            for part in [node.left, *node.comparators]:
                values = part.elts if isinstance(part, (ast.Tuple, ast.List, ast.Set)) else [part]
                out += [(node.lineno, v.value) for v in values if isinstance(v, ast.Constant)
                        and isinstance(v.value, str)]
    return out


def test_data_never_names_a_stage():
    for path in (SRC / "data").rglob("*.py"):
        for node in ast.walk(tree_of(path)):
            if isinstance(node, ast.Constant) and node.value in STAGE_NAMES:
                raise AssertionError(f"{path.relative_to(SRC)} line {node.lineno} names stage {node.value!r}")


def test_stage_branches_live_in_stages_and_config():
    for path in sources():
        if path.relative_to(SRC).parts[0] in ("stages", "config"):
            continue
        named = [(line, value) for line, value in string_comparisons(path) if value in STAGE_NAMES]
        assert not named, f"{path.relative_to(SRC)} compares with stage names {named}: declare it on the Stage"


def test_source_files_stay_small():
    for path in sources():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= 500, f"{path.relative_to(SRC)} has {lines} lines; split it"
