"""The command line: output for people and machines, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import networkx as nx
import pytest
from click.testing import CliRunner

from graphblocks import DEFAULT_MAX_CROSSING
from graphblocks.cli import cli
from graphblocks.errors import CaptureError
from graphblocks.partition import Partition

TOY = "tests/toy_models.py:vgg_like"
SMALL = ["--input-size", "3,16,16"]


@pytest.fixture
def runner():
    return CliRunner()


def test_inspect_prints_table_and_summary(runner):
    result = runner.invoke(cli, ["inspect", TOY, *SMALL])
    assert result.exit_code == 0, result.output
    assert "3 blocks + head" in result.stdout and "features.0.0 → features.0.1" in result.stdout
    assert "frontend fx" in result.stdout and "Q1:1 Q2:1 Q3:1 Q4:0" in result.stdout


def test_inspect_json_is_the_partition(runner):
    result = runner.invoke(cli, ["inspect", TOY, *SMALL, "--json"])
    assert result.exit_code == 0
    partition = Partition.from_json(result.stdout)
    assert partition.model.source == "python" and partition.num_blocks == 3


def test_partition_writes_a_byte_stable_file(runner, tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    for path in (first, second):
        assert runner.invoke(cli, ["partition", TOY, *SMALL, "-o", str(path)]).exit_code == 0
    assert first.read_bytes() == second.read_bytes()


def test_settings_reach_the_partition(runner):
    result = runner.invoke(cli, ["inspect", "tests/toy_models.py:widened", "--model-arg", "width=6",
                                 *SMALL, "--delimiters", "pool,merge", "--max-blocks", "1", "--json"])  # fmt: skip
    data = json.loads(result.stdout)
    assert data["settings"] == {
        "delimiters": ["pool", "merge"],
        "max_blocks": 1,
        "max_crossing": DEFAULT_MAX_CROSSING,
        "model_args": {"width": 6},
    }
    assert data["layers"][0]["num_params"] == 6 * 3 * 3 * 3  # conv without bias


@pytest.mark.parametrize("suffix", [".graphml", ".json"])
def test_graph_files_load_back(runner, tmp_path, suffix):
    path = tmp_path / f"g{suffix}"
    result = runner.invoke(cli, ["graph", TOY, *SMALL, "-o", str(path)])
    assert result.exit_code == 0, result.output
    if suffix == ".graphml":
        graph = nx.read_graphml(path)
    else:
        graph = nx.node_link_graph(json.loads(path.read_text()), edges="edges")
    assert (
        graph.nodes["features.0.0"]["op"] == "Conv2d" and graph.nodes["features.0.0"]["block"] == 0
    )
    assert graph.nodes["fc"]["block"] == -1 and nx.is_directed_acyclic_graph(graph)


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["inspect", "resnet5O"], 2, "did you mean: resnet50"),
        (["inspect", "tests/toy_models.py:data_dependent", *SMALL], 3, "no frontend could capture"),
        (["inspect", TOY, "--input-size", "3,16"], 2, "bad input size"),
        (["inspect", TOY, "--delimiters", "pool,colour"], 2, "bad delimiters"),
        (["inspect", TOY, "--model-arg", "nokey"], 2, "key=value"),
        (["graph", TOY, "-o", "g.txt"], 2, "cannot write a graph as '.txt'"),
        (["inspect", "tests/toy_models.py:failing_factory"], 2, "width 4 is not supported"),
    ],
)
def test_bad_input_is_one_line(runner, args, code, text):
    result = runner.invoke(cli, args)
    assert result.exit_code == code
    assert text in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_debug_shows_the_exception(runner):
    result = runner.invoke(
        cli, ["inspect", "tests/toy_models.py:data_dependent", *SMALL, "--debug"]
    )
    assert isinstance(result.exception, CaptureError)


def test_console_script_exit_code_and_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "graphblocks.cli", "inspect", "tests/toy_models.py:nothing_here"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        == "error: 'tests/toy_models.py' has no callable 'nothing_here'; closest: "
        + proc.stderr.split("closest: ")[1].strip()
    )


def test_help_is_useful(runner):
    for command in ("inspect", "partition", "graph"):
        text = runner.invoke(cli, [command, "--help"]).stdout
        assert "--input-size" in text and "--delimiters" in text and "Example" in text
