"""Human-readable views of a partition (rich tables)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from graphblocks.errors import GraphblocksError
from graphblocks.partition import Partition

if TYPE_CHECKING:
    from graphblocks.zoo.run import ZooRun


def human_count(n: int, digits: int = 2) -> str:
    """``25557032`` → ``25.56M``."""
    for unit, size in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.{digits}f}{unit}"
    return str(n)


def layer_span(layers: list[str], joiner: str = " → ") -> str:
    """``first → last``, the one name, or ``-`` for none."""
    if not layers:
        return "-"
    return layers[0] if len(layers) == 1 else f"{layers[0]}{joiner}{layers[-1]}"


def partition_table(partition: Partition) -> Table:
    """One row per block, then the head."""
    table = Table(
        title=f"{partition.model.name}: {partition.num_blocks} blocks + head", title_justify="left"
    )
    for column, justify in (("block", "right"), ("Q", "right"), ("layers (first → last)", "left"),
                            ("#layers", "right"), ("params", "right"), ("share", "right"), ("res", "center")):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for block in partition.blocks:
        table.add_row(
            str(block.index), f"Q{block.quartile}", layer_span(block.layers), str(len(block.layers)),
            human_count(block.num_params), f"{100 * block.share:.1f}%", "✓" if block.has_residual else "",
        )  # fmt: skip
    head = partition.head
    share = head.num_params / max(partition.model.num_params, 1)
    table.add_row("head", "", layer_span(head.layers), str(len(head.layers)), human_count(head.num_params),
                  f"{100 * share:.1f}%", "", style="dim")  # fmt: skip
    return table


def summary_line(partition: Partition, seconds: float | None = None) -> str:
    """frontend, nodes, blocks, params (and seconds) on one line."""
    m = partition.model
    quartiles = " ".join(f"Q{q}:{len(v)}" for q, v in partition.quartiles.items())
    parts = [
        f"frontend {m.frontend}",
        f"{m.num_nodes} nodes",
        f"{partition.num_blocks} blocks ({quartiles})",
        f"{human_count(m.num_params)} params",
        f"input {'x'.join(map(str, m.input_size))}",
    ]
    if seconds is not None:
        parts.append(f"{seconds:.2f} s")
    return " · ".join(parts)


def print_partition(
    partition: Partition, seconds: float | None = None, console: Console | None = None
) -> None:
    """Print the block table and the summary line."""
    console = console or Console()
    console.print(partition_table(partition))
    console.print(summary_line(partition, seconds), highlight=False, soft_wrap=True)
    if partition.unused:
        console.print(
            f"note: {len(partition.unused)} parameters are never read by forward (listed under 'unused')",
            style="yellow",
        )


def run_zoo_with_progress(config: ZooRun) -> None:
    """List the zoo, run what is pending with a progress bar, print the outcome."""
    from collections import Counter

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
