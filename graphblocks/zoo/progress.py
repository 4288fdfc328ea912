"""``graphblocks zoo`` for people: the zoo run behind a progress bar, and its outcome."""

from __future__ import annotations

from collections import Counter

from rich.console import Console

from graphblocks.errors import GraphblocksError
from graphblocks.zoo.run import ZooRun


def run_zoo_with_progress(config: ZooRun) -> None:
    """List the zoo, run what is pending with a progress bar, print the outcome."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from graphblocks.zoo.models import list_zoo, stratified_sample
    from graphblocks.zoo.run import pending_models, run_zoo

    console = Console(stderr=True)
    models = list_zoo(config.source, config.pattern)
    if not models:
        raise GraphblocksError(
            f"no {config.source} model matches {config.pattern!r}", "check --pattern"
        )
    if config.sample:
        models = stratified_sample(models, config.sample)
    todo = pending_models(models, config.output, config.resume)
    outcome: Counter[str] = Counter()
    columns = (TextColumn("zoo"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeElapsedColumn(), TextColumn("{task.fields[last]}", style="dim"))  # fmt: skip
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("zoo", total=len(todo), rate="", last="")

        def on_row(row: dict[str, object]) -> None:
            outcome[str(row["status"])] += 1
            done = sum(outcome.values())
            progress.update(
                task,
                advance=1,
                rate=f"{100 * outcome['ok'] / done:.1f}% valid",
                last=str(row["model"]),
            )

        run_zoo(
            todo,
            config.output,
            jobs=config.jobs,
            timeout=config.timeout,
            memory_gb=config.memory_gb,
            on_row=on_row,
        )
    skipped = len(models) - len(todo)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(outcome.items()))
    console.print(
        f"{len(todo)} models run ({counts or 'none'}){f', {skipped} already in the report' if skipped else ''}; report: {config.output}",
        highlight=False,
    )
