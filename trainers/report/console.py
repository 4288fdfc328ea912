"""Results for people: the table of a run's jobs, and progress bars."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from trainers.execution.tasks import Progress, ProgressEvent
from trainers.jobs.confidence import Confidence
from trainers.jobs.job import Job, JobKind, JobResult, TrainedPhase, job_name
from trainers.jobs.results import RunResults, Selection
from trainers.settings import Selector


def _pct(value: float | None) -> str:
    return "-" if value is None or value != value else f"{100 * value:.1f}%"


def trained_cell(result: JobResult) -> str:
    """What a job trained, phase by phase, in epochs: ``5 ep`` for a plain job;
    ``5 ep @ 1e-04–1e-03`` where its parameter groups' rates differ; ``probe 2 ep →
    fine-tune 3 ep (best)`` for several phases, the one of its best epoch marked, each phase's
    rate added where the phases' rates differ."""
    phases = result.phases
    if not phases:
        return "-"
    ranged = any(p.lr_min != p.lr for p in phases) or len({p.lr for p in phases}) > 1
    if len(phases) == 1:
        only = phases[0]
        return f"{only.epochs} ep" + (f" @ {_rates(only)}" if ranged else "")
    parts, done = [], 0
    for phase in phases:
        best = done < (result.best_epoch or 0) <= done + phase.epochs
        done += phase.epochs
        rate = f" @ {_rates(phase)}" if ranged else ""
        parts.append(f"{phase.name} {phase.epochs} ep{rate}" + (" (best)" if best else ""))
    return " → ".join(parts)


def _rates(phase: TrainedPhase) -> str:
    low, high = f"{phase.lr_min:.0e}", f"{phase.lr:.0e}"
    return high if low == high else f"{low}–{high}"


def print_results(results: RunResults) -> None:
    """One row per job; for a sweep, B_opt and the quartiles below."""
    from rich.console import Console
    from rich.table import Table

    best = results.best_block
    b_opt = job_name(JobKind.BLOCK, best.index) if best else None
    table = Table(title=f"{results.model}: {results.strategy}", title_justify="left")
    for column in ("job", "val acc", "test acc", "trainable", "trained", "seconds", "cache"):
        left = column in ("job", "trained", "cache")
        table.add_column(column, justify="left" if left else "right")
    for r in results.jobs:
        name = r.name + (" ★ B_opt" if r.name == b_opt else "")
        table.add_row(
            name,
            _pct(r.val_acc),
            _pct(r.test_acc),
            f"{r.trainable_params:,}",
            trained_cell(r),
            f"{r.seconds:.1f}",
            ",".join(r.cache) or "-",
        )
    console = Console()
    console.print(table)
    for q, stats in sorted(results.sweep.quartiles.items() if results.sweep else []):
        t = stats.test_acc
        console.print(
            f"Q{q}: blocks {list(stats.blocks)} test mean {_pct(t.mean)} ± {_pct(t.std)}, best {_pct(t.max)}"
        )
    if best is not None and best.confidence is not None:
        console.print(confidence_line(best.index, best.confidence))
    if results.selection is not None:
        console.print(selection_line(results.selection))
    if results.skipped_images:
        console.print(
            f"[yellow]{len(results.skipped_images)} unreadable images skipped (listed in results.json)[/]"
        )
    if results.weights_note:
        console.print(f"[yellow]{results.weights_note}[/]")
    if results.cache_note:
        console.print(f"[yellow]{results.cache_note}[/]")


def confidence_line(block: int, confidence: Confidence) -> str:
    """How firmly B_opt was chosen, in one line; a coin flip says so first."""
    c = confidence
    lead = (
        f"{c.margin_images} more of {c.images} validation images right than block {c.runner_up}"
        if c.margin_images
        else f"as many of {c.images} validation images right as block {c.runner_up} (the loss decided)"
    )
    stands = f"the choice stands in {c.stands:.0%} of {c.resamples} bootstrap resamples"
    if c.coin_flip:
        return (
            f"[yellow]B_opt is a coin flip: block {block} got {lead}; {stands}. "
            "More validation images (--split) would decide it.[/]"
        )
    return f"B_opt = block {block}: {lead}; {stands}."


def selection_line(selection: Selection) -> str:
    """How B_opt was found, and its cost against the full sweep's, in one line."""
    cost = (
        f"{selection.epochs_run:g} of {selection.epochs_full_sweep} block epochs "
        f"({selection.share:.0%} of a full sweep), {selection.seconds:.1f} s"
    )
    if selection.rungs:
        rungs = " → ".join(f"{len(r.blocks)} × {r.epochs}" for r in selection.rungs)
        how = {Selector.HALVING: "successive halving", Selector.ASHA: "Ray Tune's ASHA"}[
            Selector(selection.method)
        ]
        return f"B_opt by {how} (η {selection.eta}; blocks × epochs {rungs}): {cost}"
    ranking = f"ranking {selection.ranking_seconds:.1f} s" if selection.ranking_seconds else ""
    return f"B_opt by relative gradient norm ({ranking}, top block trained): {cost}"


@contextlib.contextmanager
def progress_printer() -> Iterator[Progress]:
    """Rich progress bars: the jobs of a run, and the epochs of the current job."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    ) as bar:
        task = bar.add_task("jobs", total=None)
        epochs = bar.add_task("epochs", total=None)

        def update(event: ProgressEvent, job: Job, done: int, total: int) -> None:
            if event is ProgressEvent.EPOCH:
                bar.update(epochs, total=total, completed=done, description=f"  {job.name} epochs")
                return
            if event is ProgressEvent.START:
                bar.reset(epochs)
            bar.update(task, total=total, completed=done, description=f"jobs ({event} {job.name})")

        yield update
