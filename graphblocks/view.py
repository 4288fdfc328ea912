"""``graphblocks view``: a partition in Google's Model Explorer, served on this machine.

The target is a model (partitioned first), a partition JSON, or the run folder of a
``graphblocks-train`` run. A run folder gives more overlays: a sweep's validation and
test accuracy per block with B_opt marked (from its ``results.json``), RL-Tune's mean
learning rate per layer or block (from its ``rltune-lr.csv``). graphblocks never imports
the trainers: it reads those documented files (docs/trainers.md; a test pins the names).

The server listens on 127.0.0.1 only: Model Explorer's server reads any local file it
is asked for. Its version check (PyPI, then GitHub, no timeout) runs with the HTTP
proxy variables pointed at a closed port of this machine, so it fails at once and no
request leaves the machine. The printed URL opens the graph with the first block
expanded; Ctrl-C stops the server.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import json
import os
import socket
import statistics
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from graphblocks.errors import GraphblocksError
from graphblocks.exports.model_explorer import (
    ACCURACY_GRADIENT,
    Overlay,
    block_label,
    graph_id,
    group_id,
    per_block,
    write_model_explorer,
)
from graphblocks.partition import Partition

if TYPE_CHECKING:
    from graphblocks.pipeline import Analysis

HOST = "127.0.0.1"
DEFAULT_PORT = 8080
#: the files of a graphblocks-train run folder that the view reads
RUN_PARTITION, RUN_RESULTS, RUN_RATES = "partition.json", "results.json", "rltune-lr.csv"
#: where Model Explorer's requests to the internet go: nowhere (the discard port)
CLOSED_PROXY = "http://127.0.0.1:9"


class ViewError(GraphblocksError):
    """Something ``graphblocks view`` cannot show or serve."""


@dataclass
class ViewFiles:
    """What the viewer loads: the graph JSON, its overlays, the partition behind them."""

    partition: Partition
    graph: Path
    overlays: list[Path] = field(default_factory=list)


def _run_results(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_RESULTS
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise ViewError(
            f"{str(run_dir)!r} has no readable {RUN_RESULTS}",
            "give a run folder of graphblocks-train that has finished a job",
        ) from None
    return data


def sweep_overlays(
    results: Mapping[str, Any], node_blocks: Mapping[str, int | None]
) -> list[Overlay]:
    """Validation and test accuracy (%) per block job, and B_opt's nodes marked."""
    rows = [r for r in results.get("strategies", []) if str(r.get("name", "")).startswith("block:")]
    if not rows:
        return []
    overlays = []
    for key, name in (("val_acc", "validation accuracy (%)"), ("test_acc", "test accuracy (%)")):
        values = {
            int(r["name"].split(":")[1]): 100 * r[key] for r in rows if r.get(key) == r.get(key)
        }
        overlays.append(
            Overlay(name, per_block(node_blocks, values), tuple(ACCURACY_GRADIENT), stats=True)
        )
    best = (results.get("best_block") or {}).get("index")
    if best is not None:
        overlays.append(Overlay("B_opt", per_block(node_blocks, {int(best): 1.0})))
    return overlays


def rate_overlay(
    rates_csv: Path, partition: Partition, node_blocks: Mapping[str, int | None]
) -> list[Overlay]:
    """RL-Tune's learning rate per unit, averaged over its epochs, on the unit's nodes
    (a layer's node, a block's nodes, the head's nodes)."""
    with rates_csv.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    units = [k for k in (rows[0] if rows else {}) if k not in ("episode", "epoch", "val_acc")]
    mean = {u: statistics.fmean(float(r[u]) for r in rows) for u in units}
    layer_nodes = {layer.name: layer.node for layer in partition.layers}
    values: dict[str, float] = {}
    for unit, rate in mean.items():
        if unit in layer_nodes:
            values[layer_nodes[unit]] = rate
        elif unit.startswith("block:"):
            values.update(per_block(node_blocks, {int(unit.split(":")[1]): rate}))
        elif unit == "head":
            values.update({n: rate for n, b in node_blocks.items() if b is None})
    return [Overlay("RL-Tune learning rate", values, stats=True)] if values else []


def resolve_target(
    target: str, input_size: tuple[int, ...] | None
) -> tuple[Analysis, dict[str, Any] | None, Path | None]:
    """The analysis of a model, partition file or run folder; for a run folder, its
    results and the folder (to read overlays from)."""
    from graphblocks.exports import reanalyze
    from graphblocks.pipeline import Settings, analyze_model

    path = Path(target)
    if path.is_dir():
        if not (path / RUN_PARTITION).is_file():
            raise ViewError(
                f"{target!r} is no run folder (it has no {RUN_PARTITION})",
                "give a model, a partition JSON, or a graphblocks-train run folder",
            )
        results = _run_results(path)
        return reanalyze(Partition.load(path / RUN_PARTITION)), results, path
    if path.suffix == ".json" and path.is_file():
        return reanalyze(Partition.load(path)), None, None
    return analyze_model(target, Settings(input_size=input_size)), None, None


def prepare_view(target: str, out: Path, input_size: tuple[int, ...] | None = None) -> ViewFiles:
    """Write the graph and every overlay for ``target`` into the folder ``out``."""
    analysis, results, run = resolve_target(target, input_size)
    partition, blocks = analysis.partition, analysis.node_blocks
    extra = sweep_overlays(results, blocks) if results is not None else []
    if run is not None and (run / RUN_RATES).is_file():
        extra += rate_overlay(run / RUN_RATES, partition, blocks)
    graph, overlays = write_model_explorer(out, analysis.graph, partition, blocks, extra)
    return ViewFiles(partition, graph, overlays)


def url_data(files: ViewFiles) -> dict[str, Any]:
    """What Model Explorer reads from its ``data`` URL parameter."""
    first = block_label(files.partition, 0) if files.partition.blocks else ""
    pane = {"deepestExpandedGroupNodeIds": [group_id(first)] if first else [],
            "selectedNodeId": "", "selectedGraphId": graph_id(files.partition),
            "selectedCollectionLabel": "", "widthFraction": 1}  # fmt: skip
    return {
        "models": [{"url": str(files.graph.resolve())}],
        "nodeData": [str(p.resolve()) for p in files.overlays],
        "nodeDataTargets": ["" for _ in files.overlays],
        "uiState": {"paneStates": [pane]},
    }


def port_free(port: int) -> bool:
    """Whether this machine's loopback port ``port`` can be listened on (as the server
    will: with ``SO_REUSEADDR``, so a port a stopped server left in TIME_WAIT is free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def choose_port(port: int | None) -> int:
    """``port`` when free (a one-line error suggesting another when not); without one,
    8080 or, when taken, a free one."""
    if port is None:
        return DEFAULT_PORT if port_free(DEFAULT_PORT) else free_port()
    if not port_free(port):
        raise ViewError(f"port {port} is in use", f"pass --port {free_port()} (free now)")
    return port


def _model_explorer() -> Any:
    try:
        import model_explorer
    except ImportError:
        raise ViewError(
            "graphblocks view needs Google's Model Explorer, which is not installed",
            "pip install 'graphblocks[view]'",
        ) from None
    return model_explorer


@contextlib.contextmanager
def no_internet() -> Iterator[None]:
    """HTTP(S) proxies pointed at a closed local port, loopback excepted, while the block
    runs: a library's request to the internet fails at once, on this machine."""
    settings = {"HTTP_PROXY": CLOSED_PROXY, "HTTPS_PROXY": CLOSED_PROXY,
                "NO_PROXY": "127.0.0.1,localhost"}  # fmt: skip
    settings |= {k.lower(): v for k, v in settings.items()}
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def serve(files: ViewFiles, port: int, *, open_browser: bool) -> None:
    """Serve ``files`` in Model Explorer on 127.0.0.1:``port`` until Ctrl-C; Model
    Explorer prints (and, with ``open_browser``, opens) the URL of :func:`url_data`,
    which expands the first block."""
    model_explorer = _model_explorer()
    base = importlib.import_module("model_explorer.config").ModelExplorerConfig

    class Config(base):  # type: ignore[misc, valid-type]
        """Model Explorer's config whose URL also opens the first block."""

        def to_url_param_value(self) -> str:
            return quote(json.dumps(url_data(files)))

    config = Config()
    config.add_model_from_path(str(files.graph))
    for overlay in files.overlays:
        config.add_node_data_from_path(str(overlay))
    with no_internet():
        model_explorer.visualize_from_config(
            config=config, host=HOST, port=port, no_open_in_browser=not open_browser
        )


def view(
    target: str,
    *,
    port: int | None = None,
    open_browser: bool = True,
    input_size: tuple[int, ...] | None = None,
) -> None:
    """``graphblocks view``: prepare ``target``'s files in a temporary folder and serve
    them until Ctrl-C (see the module docstring)."""
    _model_explorer()  # one line before any work when the extra is missing
    chosen = choose_port(port)
    with tempfile.TemporaryDirectory(prefix="graphblocks-view-") as folder:
        files = prepare_view(target, Path(folder), input_size)
        serve(files, chosen, open_browser=open_browser)
