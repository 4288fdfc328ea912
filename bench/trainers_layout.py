"""The shape of ``trainers/``'s import graph, read from the source (issue 23's figures).

Prints, for the package at ``--root`` (default: this checkout):

* the modules at the package's top level (``__init__`` and ``__main__`` not counted);
* the import levels: the longest chain of imports between the package's modules, after
  each import cycle is contracted to one node (a module that imports none of the others
  is on level 1);
* the import cycles: the strongly connected components with more than one module;
* the upward imports: imports from a module to one in a higher layer, by the layer order
  that ``tests/test_design.py`` pins (its ``LAYERS``, and its import graph); a module of
  the old flat layout is placed in the layer its code moved to (:data:`OLD_LAYERS`), so
  that an older checkout is measured by the same rule;
* the longest function and the largest class, in lines.

Every ``import`` counts, also those inside functions: a deferred import is still a
dependency. Usage: ``python bench/trainers_layout.py [--root PATH] [--json]``.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path
from typing import Any

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_design import LAYERS, import_graph  # noqa: E402

#: where the modules of the flat layout (main 5fc09c9) went
OLD_LAYERS = {
    "setting": "settings", "config": "settings", "settings_table": "settings",
    "rltune.presets": "settings", "jobs": "jobs", "strategies": "jobs", "results": "jobs",
    "schema": "jobs", "data": "training", "modeling": "training", "cache": "training",
    "engine": "training", "pause": "training", "rltune": "training", "tasks": "execution",
    "executors": "execution", "ray_executor": "execution", "selection": "selection",
    "asha": "selection", "console": "report", "plots": "report", "session": "session",
    "study": "study", "cli": "cli",
}  # fmt: skip


def layer_of(module: str) -> str | None:
    """The layer of a module of either layout (None: the package's ``__init__``)."""
    first = module.split(".")[0]
    if first in LAYERS:
        return first
    for old in sorted(OLD_LAYERS, key=len, reverse=True):
        if module == old or module.startswith(old + "."):
            return OLD_LAYERS[old]
    return None


def upward_imports(graph: nx.DiGraph) -> list[tuple[str, str]]:
    """Imports whose target is in a higher layer than the importing module."""
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    found = []
    for a, b in graph.edges:
        la, lb = layer_of(a), layer_of(b)
        if la is not None and lb is not None and rank[lb] > rank[la]:
            found.append((a, b))
    return sorted(found)


def levels(graph: nx.DiGraph) -> int:
    """The longest import chain, in modules, with each cycle contracted."""
    dag = nx.condensation(graph)
    return int(nx.dag_longest_path_length(dag)) + 1 if dag.number_of_nodes() else 0


def largest(package: Path, kind: type) -> tuple[str, int]:
    """The longest function or class (``kind``) of the package, and its lines."""
    best = ("", 0)
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, kind) and node.end_lineno is not None:
                size = node.end_lineno - node.lineno + 1
                if size > best[1]:
                    best = (f"{path.relative_to(package.parent)}:{node.name}", size)
    return best


def measure(package: Path) -> dict[str, Any]:
    """The figures the module docstring lists."""
    graph = import_graph(package)
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    top = sorted(p.stem for p in package.glob("*.py") if p.stem not in ("__init__", "__main__"))
    function = largest(package, ast.FunctionDef)
    cls = largest(package, ast.ClassDef)
    return {
        "modules": graph.number_of_nodes(),
        "top_level_modules": top,
        "import_levels": levels(graph),
        "cycles": sorted(cycles),
        "upward_imports": [f"{a} -> {b}" for a, b in upward_imports(graph)],
        "longest_function": {"name": function[0], "lines": function[1]},
        "largest_class": {"name": cls[0], "lines": cls[1]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="a checkout of graphblocks")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    figures = measure(args.root / "trainers")
    if args.json:
        print(json.dumps(figures, indent=1))
        return
    print(f"modules: {figures['modules']}")
    print(f"top-level modules ({len(figures['top_level_modules'])}): "
          f"{', '.join(figures['top_level_modules'])}")  # fmt: skip
    print(f"import levels: {figures['import_levels']}")
    print(f"cycles ({len(figures['cycles'])}): {figures['cycles']}")
    print(f"upward imports ({len(figures['upward_imports'])}):")
    for edge in figures["upward_imports"]:
        print(f"  {edge}")
    f, c = figures["longest_function"], figures["largest_class"]
    print(f"longest function: {f['name']} ({f['lines']} lines)")
    print(f"largest class: {c['name']} ({c['lines']} lines)")


if __name__ == "__main__":
    main()
