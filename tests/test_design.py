"""The design rules the code keeps, checked on its source (issue 13).

* trainers/ reaches graphblocks only through the names in ``graphblocks.__all__``;
* no module reads another module's private names;
* no function in graphblocks/ or trainers/ is over 60 lines;
* the settings table in docs/trainers.md is the one generated from the declarations,
  and every declared setting is a flag of the commands that offer it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

import graphblocks
from trainers.cli import cli
from trainers.settings.config import COMMANDS, settings
from trainers.settings.table import with_settings_table

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("graphblocks", "trainers")
MAX_FUNCTION_LINES = 60
#: public names of the standard library that look private
STDLIB_UNDERSCORED = {"os._exit"}


def _modules(*packages: str) -> Iterator[tuple[Path, ast.Module]]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT), ast.parse(path.read_text(encoding="utf-8"))


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
