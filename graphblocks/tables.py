"""Human-readable views of a partition (rich tables)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from graphblocks.partition import Partition

if TYPE_CHECKING:
    from graphblocks.porting import Ported


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
    """One row per block, then the head; an ``in`` column (how many tensors cross into
    the block) where some cut lets more than one cross."""
    table = Table(
        title=f"{partition.model.name}: {partition.num_blocks} blocks + head", title_justify="left"
    )
    crossing = any(len(b.inputs) > 1 for b in partition.blocks)
    for column, justify in (("block", "right"), ("Q", "right"), ("layers (first → last)", "left"),
                            ("#layers", "right"), ("params", "right"), ("share", "right"), ("res", "center"),
                            *([("in", "right")] if crossing else [])):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for block in partition.blocks:
        table.add_row(
            str(block.index), f"Q{block.quartile}", layer_span(block.layers), str(len(block.layers)),
            human_count(block.num_params), f"{100 * block.share:.1f}%", "✓" if block.has_residual else "",
            *([str(len(block.inputs))] if crossing else []),
        )  # fmt: skip
    head = partition.head
    share = head.num_params / max(partition.model.num_params, 1)
    table.add_row("head", "", layer_span(head.layers), str(len(head.layers)), human_count(head.num_params),
                  f"{100 * share:.1f}%", "", *([""] if crossing else []), style="dim")  # fmt: skip
    return table


def summary_line(partition: Partition, seconds: float | None = None) -> str:
    """frontend, nodes, blocks, widest cut, params (and seconds) on one line; and where
    the crossing bound kept the largest such block whole, that it did."""
    m = partition.model
    quartiles = " ".join(f"Q{q}:{len(v)}" for q, v in partition.quartiles.items())
    widest = max((len(b.inputs) for b in partition.blocks), default=1)
    parts = [
        f"frontend {m.frontend}",
        f"{m.num_nodes} nodes",
        f"{partition.num_blocks} blocks ({quartiles})",
        f"widest cut {widest} tensor{'s' if widest > 1 else ''}",
        f"{human_count(m.num_params)} params",
        f"input {'x'.join(map(str, m.input_size))}",
    ]
    if seconds is not None:
        parts.append(f"{seconds:.2f} s")
    uncut = [b for b in partition.blocks if b.narrowest_refused_cut is not None]
    if uncut:
        block = max(uncut, key=lambda b: b.num_params)
        bound = partition.settings["max_crossing"]
        parts.append(
            f"no cut with ≤ {bound} crossing tensors inside block {block.index} "
            f"({100 * block.share:.0f}% of the weights; the narrowest crosses "
            f"{block.narrowest_refused_cut}: --max-crossing {block.narrowest_refused_cut})"
        )
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


def port_table(ported: Ported, title: str) -> Table:
    """One row per ported tensor: index, checkpoint key, model name, shape."""
    table = Table(title=title, title_justify="left")
    for column, justify in (("#", "right"), ("checkpoint", "left"), ("model", "left"), ("shape", "left")):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for pair in ported.pairs:
        table.add_row(
            str(pair.index), pair.source, pair.target, "×".join(map(str, pair.shape)) or "scalar"
        )
    return table
