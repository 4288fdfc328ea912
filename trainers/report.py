"""Results for people: the table of jobs, progress bars, the plots of a run folder."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from graphblocks.errors import GraphblocksError
from trainers.engine import Job
from trainers.session import Progress


def load_results(run_dir: Path) -> dict[str, Any]:
    """``RUN_DIR/results.json``, or a one-line error."""
    path = run_dir / "results.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise GraphblocksError(
            f"no readable results in {str(run_dir)!r}", "give a run folder of graphblocks-train"
        ) from exc


def _pct(value: float | None) -> str:
    return "-" if value is None or value != value else f"{100 * value:.1f}%"


def print_results(doc: dict[str, Any]) -> None:
    """One row per job; for a sweep, B_opt and the quartiles below."""
    from rich.console import Console
    from rich.table import Table

    best = (doc.get("best_block") or {}).get("index")
    table = Table(title=f"{doc['model']}: {doc['strategy']}", title_justify="left")
    for column in ("job", "val acc", "test acc", "trainable", "seconds", "cache"):
        table.add_column(column, justify="left" if column in ("job", "cache") else "right")
    for r in doc["strategies"]:
        name = r["name"] + (" ★ B_opt" if r["name"] == f"block:{best}" else "")
        table.add_row(name, _pct(r["val_acc"]), _pct(r["test_acc"]), f"{r['trainable_params']:,}",
                      f"{r['seconds']:.1f}", ",".join(r.get("cache", [])) or "-")  # fmt: skip
    console = Console()
    console.print(table)
    for q, stats in sorted(doc.get("quartiles", {}).items()):
        t = stats["test_acc"]
        console.print(
            f"Q{q}: blocks {stats['blocks']} test mean {_pct(t['mean'])} ± {_pct(t['std'])}, best {_pct(t['max'])}"
        )
    if doc.get("skipped_images"):
        console.print(
            f"[yellow]{len(doc['skipped_images'])} unreadable images skipped (listed in results.json)[/]"
        )
    if doc.get("cache_note"):
        console.print(f"[yellow]{doc['cache_note']}[/]")


def render_plots(run_dir: Path, doc: dict[str, Any]) -> list[Path]:
    """``blocks.png`` and ``quartiles.png`` for a sweep, ``rltune-lr.png`` (the chosen
    learning rate per unit and epoch) for RL-Tune."""
    from trainers.plots import plot_blocks, plot_lr_heatmap, plot_quartiles

    written = []
    if any(r["name"].startswith("block:") for r in doc["strategies"]):
        written += [
            plot_blocks(doc, run_dir / "blocks.png"),
            plot_quartiles([doc], run_dir / "quartiles.png"),
        ]
    if (run_dir / "rltune-lr.csv").exists():
        written.append(plot_lr_heatmap(run_dir / "rltune-lr.csv", run_dir / "rltune-lr.png"))
    return written


@contextlib.contextmanager
def progress_printer() -> Iterator[Progress]:
    """Rich progress bars: the jobs of a run, and the epochs of the current job."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    ) as bar:
        task = bar.add_task("jobs", total=None)
        epochs = bar.add_task("epochs", total=None)

        def update(event: str, job: Job, done: int, total: int) -> None:
            if event == "epoch":
                bar.update(epochs, total=total, completed=done, description=f"  {job.name} epochs")
                return
            if event == "start":
                bar.reset(epochs)
            bar.update(task, total=total, completed=done, description=f"jobs ({event} {job.name})")

        yield update
