"""The design rules the code keeps, checked on its source (issue 13).

* trainers/ reaches graphblocks only through the names in ``graphblocks.__all__``;
* trainers/ is layered (:data:`LAYERS`, issue 23): every import between its modules goes
  to the same layer or a lower one, there is no import cycle, nothing but the CLI and
  the session sits at its top level, and only the Ray paths import Ray;
* no module reads another module's private names;
* no function in graphblocks/ or trainers/ is over 60 lines;
* the settings table in docs/trainers.md is the one generated from the declarations,
  and every declared setting is a flag of the commands that offer it;
* every job kind has one row in ``trainers.settings.kinds.JOB_KIND_TABLE``, and no other
  module spells a list of the practitioner's baselines (issue 36).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import click
import networkx as nx
import pytest

import graphblocks
import trainers
from trainers.cli import cli
from trainers.settings.config import COMMANDS, settings
from trainers.settings.table import with_settings_table

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("graphblocks", "trainers")
MAX_FUNCTION_LINES = 60
#: public names of the standard library that look private
STDLIB_UNDERSCORED = {"os._exit"}
#: the layers of trainers/, lowest first: a module imports only from its own layer or a
#: lower one (``trainers/__init__`` only re-exports the Python API, lazily)
LAYERS = (
    "settings",
    "jobs",
    "training",
    "execution",
    "selection",
    "report",
    "session",
    "study",
    "cli",
)
#: the only modules that may import Ray: where a Ray path runs
RAY_MODULES = {"execution.ray_tasks", "selection.asha"}


def _modules(*packages: str) -> Iterator[tuple[Path, ast.Module]]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT), ast.parse(path.read_text(encoding="utf-8"))


def module_name(package: Path, path: Path) -> str:
    """``trainers/study/runner.py`` → ``study.runner`` (a package's ``__init__`` is the
    package; the top one ``__init__``)."""
    parts = list(path.relative_to(package).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or "__init__"


def imported_modules(node: ast.AST, package: str) -> list[str]:
    """The modules of ``package`` that an import statement names, relative to it (for
    ``from pkg.mod import name``: ``mod.name`` first, then ``mod``)."""
    if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == package:
        base = (node.module or "").removeprefix(package).lstrip(".")
        return [f"{base}.{a.name}".lstrip(".") for a in node.names] + [base]
    if isinstance(node, ast.Import):
        return [a.name.removeprefix(package + ".") for a in node.names
                if a.name.startswith(package + ".")]  # fmt: skip
    return []


def import_graph(package: Path) -> nx.DiGraph:
    """Module → module for every import between ``package``'s own modules, also those
    inside functions (a deferred import is still a dependency)."""
    modules = {module_name(package, p): p for p in sorted(package.rglob("*.py"))}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            target = next((t for t in imported_modules(node, package.name) if t in modules), None)
            if target is not None and target != module:
                graph.add_edge(module, target)
    return graph


def layer_of(module: str) -> str | None:
    """The layer of a module of trainers/ (None: the package's ``__init__``)."""
    first = module.split(".")[0]
    return first if first in LAYERS else None


def test_trainers_imports_point_down_the_layers_without_cycles() -> None:
    graph = import_graph(ROOT / "trainers")
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    unplaced = sorted(m for m in graph if m != "__init__" and layer_of(m) is None)
    assert not unplaced, f"modules outside the layers {LAYERS}: {unplaced}"
    upward = [
        f"{a} -> {b}"
        for a, b in graph.edges
        if a != "__init__" and rank[layer_of(b) or "cli"] > rank[layer_of(a) or "cli"]
    ]
    assert not upward, upward
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert not cycles, cycles
    top = sorted(p.stem for p in (ROOT / "trainers").glob("*.py"))
    assert top == ["__init__", "cli", "session"]


def test_the_top_level_api_resolves_without_importing_torch() -> None:
    import subprocess
    import sys

    names = ", ".join(trainers.API)
    code = (
        "import sys, trainers\n"
        "assert 'torch' not in sys.modules\n"
        f"from trainers import {names}\n"
        "assert sorted(trainers.__all__) == trainers.__all__"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_only_the_ray_paths_import_ray() -> None:
    found = {
        module_name(Path("trainers"), path)
        for path, tree in _modules("trainers")
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom | ast.Import) and "ray" in _top_names(node)
    }
    assert found == RAY_MODULES, found


def _top_names(node: ast.Import | ast.ImportFrom) -> set[str]:
    if isinstance(node, ast.ImportFrom):
        return {(node.module or "").split(".")[0]} if node.level == 0 else set()
    return {a.name.split(".")[0] for a in node.names}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_trainers_use_only_the_public_api_of_graphblocks() -> None:
    public = set(graphblocks.__all__)
    found = []
    for path, tree in _modules("trainers"):
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("graphblocks"):
                if node.module != "graphblocks":
                    found.append(f"{path}:{node.lineno} from {node.module} import …")
                found += [
                    f"{path}:{node.lineno} {a.name}" for a in node.names if a.name not in public
                ]
            elif isinstance(node, ast.Import):
                found += [f"{path}:{node.lineno} import {a.name}" for a in node.names
                          if a.name.startswith("graphblocks.")]  # fmt: skip
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "graphblocks"
                and node.attr not in public
            ):
                found.append(f"{path}:{node.lineno} graphblocks.{node.attr}")
    assert not found, found


def test_no_module_reads_another_modules_private_names() -> None:
    found = []
    for path, tree in _modules(*PACKAGES, "tests", "bench", "fixtures"):
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                parts = (node.module or "").split(".")
                names = [a.name for a in node.names]
                if any(_private(p) for p in parts) or any(_private(n) for n in names):
                    found.append(f"{path}:{node.lineno} from {node.module} import {names}")
            elif isinstance(node, ast.Attribute) and _private(node.attr):
                owner = node.value
                mine = isinstance(owner, ast.Name) and owner.id in ("self", "cls")
                if not mine and ast.unparse(node) not in STDLIB_UNDERSCORED:
                    found.append(f"{path}:{node.lineno} {ast.unparse(node)}")
    assert not found, found


def test_no_function_is_over_sixty_lines() -> None:
    long = [
        f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path, tree in _modules(*PACKAGES)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, long


def _kind_literals(node: ast.AST, names: set[str]) -> int:
    """How many of a literal's elements name one of the job kinds ``names``: a
    ``JobKind.X``/``Strategy.X`` member or the kind's string."""
    found = 0
    for element in getattr(node, "elts", ()):
        if isinstance(element, ast.Attribute) and element.attr in names:
            found += 1
        elif isinstance(element, ast.Constant) and element.value in names:
            found += 1
    return found


def test_kinds_are_listed_once_in_the_kind_table() -> None:
    """Issue 36: every job kind has one row, every per-kind dispatch covers the kinds the
    table says, and no other module spells a list of the practitioner's baselines."""
    from trainers.jobs.strategies import STRATEGY_JOBS, TRAINABLE
    from trainers.settings.kinds import JOB_KIND_TABLE, JobKind, Strategy, kinds_where
    from trainers.training.recipes import RECIPES

    assert set(JOB_KIND_TABLE) == set(JobKind) and set(TRAINABLE) == set(JobKind)
    practitioner = kinds_where(practitioner=True)
    assert set(RECIPES) == set(practitioner)
    assert {row.strategy for row in JOB_KIND_TABLE.values() if row.strategy} | {
        Strategy.SWEEP
    } == set(STRATEGY_JOBS)
    members = {kind.name for kind in practitioner} | {str(kind) for kind in practitioner}
    spelled = [
        f"{path}:{node.lineno}"
        for path, tree in _modules("trainers")
        if path != Path("trainers/settings/kinds.py")
        for node in ast.walk(tree)
        if isinstance(node, ast.Tuple | ast.List | ast.Set) and _kind_literals(node, members) >= 2
    ]
    assert not spelled, f"lists of baselines outside the kind table: {spelled}"


def test_the_settings_table_in_the_docs_is_the_generated_one() -> None:
    text = (ROOT / "docs" / "trainers.md").read_text(encoding="utf-8")
    assert text == with_settings_table(text), "docs/trainers.md is stale: run make docs"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_setting_is_a_flag_of_the_commands_that_offer_it(command: str) -> None:
    group = cli
    assert isinstance(group, click.Group)
    options = {p.name for p in group.commands[command].params}
    offered = {s.name for s in settings() if command in s.info.commands}
    assert offered <= options and options - offered == {"config_file", "debug"}
