"""graphblocks view and the Model Explorer export (issue 26): the files Model Explorer
reads, overlays from real runs, bad input, the offline guard, and the page in a real
(headless) browser."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import graphblocks
from graphblocks.cli import cli
from graphblocks.exports.model_explorer import GROUP_SUFFIX, block_label
from graphblocks.view import (
    RUN_PARTITION,
    RUN_RATES,
    RUN_RESULTS,
    free_port,
    no_internet,
    prepare_view,
    url_data,
)
from tests.browser import browser_available, open_page, page_errors, served, wait_until
from tests.image_data import make_image_folder
from trainers.jobs.run_folder import RunFolder
from trainers.session import run
from trainers.settings import TrainConfig

MODEL = "tests/toy_models.py:tiny_resnet"
SMALL = {"model": MODEL, "input_size": [3, 24, 24], "epochs": 1, "batch_size": 8}


@pytest.fixture(scope="module")
def partition_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("view") / "resnet18.json"
    graphblocks.analyze("resnet18").save(path)
    return path


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_the_export_is_what_model_explorers_loader_reads(partition_file, tmp_path):
    import dacite
    from model_explorer.graph_builder import GraphCollection

    result = CliRunner().invoke(
        cli, ["export", str(partition_file), "--to", "model-explorer", "-o", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    collection = read(tmp_path / "graph.json")
    dacite.from_dict(GraphCollection, collection, dacite.Config(strict=True))
    [graph] = collection["graphs"]
    ids = [n["id"] for n in graph["nodes"]]
    assert len(ids) == len(set(ids)), "unique ids"
    assert all(e["sourceNodeId"] in set(ids) for n in graph["nodes"] for e in n["incomingEdges"])
    assert all(isinstance(a["value"], str) for n in graph["nodes"] for a in n["attrs"])
    partition = graphblocks.Partition.load(partition_file)
    by_id = {n["id"]: n for n in graph["nodes"]}
    conv = by_id["layer1.1.conv1"]
    assert conv["namespace"] == "block 2 (Q1)/layer1.1" and conv["label"] == "conv1"
    assert by_id["fc"]["namespace"] == "head"
    assert {"op", "role", "block", "quartile", "parameters", "MACs", "output shape"} <= {
        a["key"] for a in conv["attrs"]
    }
    assert set(graph["groupNodeAttributes"]) == {
        *(block_label(partition, b.index) for b in partition.blocks),
        "head",
    }
    for name in ("block", "quartile", "share-of-weights"):
        overlay = read(tmp_path / f"{name}.json")[graph["id"]]
        assert set(overlay["results"]) <= set(ids) and overlay["results"], name
    assert read(tmp_path / "block.json")[graph["id"]]["results"]["layer1.1.conv1"]["value"] == 2


def test_the_url_opens_the_first_block(partition_file, tmp_path):
    files = prepare_view(str(partition_file), tmp_path)
    [pane] = url_data(files)["uiState"]["paneStates"]
    assert pane["deepestExpandedGroupNodeIds"] == ["block 0 (Q1)" + GROUP_SUFFIX]
    assert url_data(files)["models"] == [{"url": str(files.graph.resolve())}]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("view-images"), classes=3, per_class=8)


def test_a_sweeps_run_folder_shows_accuracy_per_block_and_b_opt(images, tmp_path):
    results = run(TrainConfig(**SMALL, data=str(images), out=str(tmp_path / "run")))
    files = prepare_view(str(tmp_path / "run"), tmp_path / "view")
    names = {p.stem for p in files.overlays}
    assert {"validation-accuracy", "test-accuracy", "b-opt"} <= names
    graph_id = files.partition.model.name
    best = results.best_block
    assert best is not None
    marked = read(tmp_path / "view" / "b-opt.json")[graph_id]["results"]
    view_blocks = json.loads(files.graph.read_text())["graphs"][0]["nodes"]
    in_best = {n["id"] for n in view_blocks if n["namespace"].startswith(f"block {best.index} ")}
    assert set(marked) == in_best
    val = read(tmp_path / "view" / "validation-accuracy.json")[graph_id]["results"]
    assert {v["value"] for k, v in val.items() if k in in_best} == {100 * best.val_acc}


def test_an_rltune_run_shows_the_rate_of_each_layer(images, tmp_path):
    out = str(tmp_path / "rl")
    run(
        TrainConfig(
            **SMALL, data=str(images), out=out, strategy="rltune", episodes=1, warmup_epochs=0
        )
    )
    files = prepare_view(str(tmp_path / "rl"), tmp_path / "view")
    rates = read(tmp_path / "view" / "rl-tune-learning-rate.json")
    [values] = rates.values()
    partition = files.partition
    weighted = {layer.node for layer in partition.layers if layer.role == "weighted"}
    assert weighted <= set(values["results"]) and all(
        v["value"] >= 0 for v in values["results"].values()
    )


def test_the_run_folders_files_are_the_trainers(tmp_path):
    folder = RunFolder(tmp_path)
    names = (folder.partition.name, folder.results.name, folder.rltune_rates.name)
    assert names == (RUN_PARTITION, RUN_RESULTS, RUN_RATES)


def test_a_run_folder_without_results_is_one_line(partition_file, tmp_path):
    (tmp_path / RUN_PARTITION).write_text(partition_file.read_text())
    result = CliRunner().invoke(cli, ["view", str(tmp_path), "--no-browser"])
    assert result.exit_code == 2 and f"no readable {RUN_RESULTS}" in result.stderr
    result = CliRunner().invoke(cli, ["view", str(tmp_path / "empty"), "--no-browser"])
    assert result.exit_code == 2


def test_a_port_in_use_is_one_line_suggesting_another(partition_file):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["view", str(partition_file), "--port", str(port)])
    assert result.exit_code == 2
    assert f"port {port} is in use" in result.stderr and "pass --port " in result.stderr


def test_without_the_extra_view_says_how_to_install_it(partition_file):
    code = ("import sys; sys.modules['model_explorer'] = None\n"
            "from graphblocks.cli import main; main()")  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", code, "view", str(partition_file), "--no-browser"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "pip install 'graphblocks[view]'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_requests_from_the_viewer_process_stay_on_this_machine():
    import requests

    began = time.perf_counter()
    with no_internet(), pytest.raises(requests.exceptions.ProxyError):
        requests.get("https://pypi.org/pypi/ai-edge-model-explorer/json", timeout=30)
    assert time.perf_counter() - began < 5, "refused at once by the closed local proxy"


@pytest.mark.skipif(not browser_available(), reason="needs chromium and chromedriver (apt)")
def test_the_view_in_a_real_browser(partition_file, tmp_path):
    from selenium.webdriver.common.by import By

    with served(str(partition_file), free_port()) as (process, url):
        driver = open_page(url)
        try:
            wait_until(lambda: driver.find_elements(By.TAG_NAME, "canvas"), seconds=90)
            panel = wait_until(
                lambda: (
                    "block 8 (Q4)" in (text := driver.find_element(By.TAG_NAME, "body").text)
                    and text
                ),
                seconds=60,
            )
            nodes = len(graphblocks.Partition.load(partition_file).layers)
            assert "op node count" in panel and "block 0 (Q1)" in panel and nodes > 0
            driver.save_screenshot(str(tmp_path / "view.png"))
            assert not page_errors(driver), page_errors(driver)
        finally:
            driver.quit()
    assert process.returncode == 0, "Ctrl-C stops it cleanly"
    assert (tmp_path / "view.png").stat().st_size > 10_000
