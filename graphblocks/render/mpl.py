"""Draw a view without Graphviz: a layered layout in pure Python, drawn with matplotlib.

Layout (a small Sugiyama scheme): a node's rank is the length of the longest path to
it from an input, so every edge points downwards; within a rank, nodes are ordered
by the mean position of their predecessors (barycenter) and centred. Skip edges bow
sideways so that they stay visible beside the main path. Each block gets a labelled
bar in the left margin spanning its ranks.
"""

from __future__ import annotations

import io
from typing import Any

import networkx as nx

from graphblocks.partition import Partition
from graphblocks.render.view import SKIP_COLOR, Legend, block_color

_BOXES = {
    "layer": "round,pad=0.3",
    "delimiter": "round4,pad=0.2",
    "merge": "circle,pad=0.15",
    "io": "round,pad=0.3",
}
_RANK_HEIGHT = 0.6  # inches per rank
_COLUMN_WIDTH = 2.3  # inches per node side by side


def layered_layout(view: nx.DiGraph) -> dict[str, tuple[float, int]]:
    """``node -> (x, rank)``: longest-path ranks, barycenter order within a rank."""
    rank: dict[str, int] = {}
    for node in view:  # views are built in topological order
        rank[node] = 1 + max((rank[p] for p in view.predecessors(node)), default=-1)
    by_rank: dict[int, list[str]] = {}
    for node, r in rank.items():
        by_rank.setdefault(r, []).append(node)
    x: dict[str, float] = {}
    for r in sorted(by_rank):
        nodes = by_rank[r]

        def barycenter(n: str) -> float:
            xs = [x[p] for p in view.predecessors(n)]
            return sum(xs) / len(xs) if xs else 0.0

        nodes.sort(key=barycenter)
        for i, node in enumerate(nodes):
            x[node] = i - (len(nodes) - 1) / 2
    return {n: (x[n], rank[n]) for n in view}


Position = dict[str, tuple[float, int]]


def _draw_edges(ax: Any, view: nx.DiGraph, pos: Position) -> None:
    """Arrows between nodes; skip connections dashed, red and bent around the trunk."""
    for u, v, skip in view.edges(data="skip"):
        (x1, r1), (x2, r2) = pos[u], pos[v]
        span = max(1, r2 - r1)
        rad = min(0.6, 2.4 / span) if skip and x1 == x2 else (0.15 if skip else 0.0)
        ax.annotate(
            "", xy=(x2, -r2), xytext=(x1, -r1), zorder=1,
            arrowprops=dict(arrowstyle="-|>", color=SKIP_COLOR if skip else "#555555",
                            lw=1.2 if skip else 0.8, linestyle="--" if skip else "-",
                            shrinkA=9, shrinkB=9, connectionstyle=f"arc3,rad={rad}"),
        )  # fmt: skip


def _draw_nodes(ax: Any, view: nx.DiGraph, pos: Position) -> None:
    """Each node as a labelled box shaped and coloured by its kind and block."""
    for node, data in view.nodes(data=True):
        x, r = pos[node]
        kind = str(data["kind"])
        ax.text(
            x, -r, str(data["label"]), ha="center", va="center", zorder=2,
            fontsize=7 if kind == "layer" else 6.5,
            bbox=dict(boxstyle=_BOXES[kind], facecolor=str(data["color"]),
                      edgecolor=SKIP_COLOR if kind == "merge" else "#444444", lw=0.6),
        )  # fmt: skip


def _draw_block_bars(
    ax: Any, view: nx.DiGraph, pos: Position, partition: Partition, left: float
) -> None:
    """A bar left of the graph per block, over its ranks, labelled with block and quartile."""
    from matplotlib.patches import Rectangle

    quartile = {b.index: b.quartile for b in partition.blocks}
    spans: dict[int, list[int]] = {}
    for node, block in view.nodes(data="block"):
        if block is not None and int(block) >= 0:
            spans.setdefault(int(block), []).append(pos[node][1])
    for block, rs in spans.items():
        top, bottom = min(rs), max(rs)
        color = block_color(block, quartile[block])
        ax.add_patch(Rectangle((left, -bottom - 0.4), 0.35, bottom - top + 0.8,
                               facecolor=color, edgecolor="#444444", lw=0.5))  # fmt: skip
        ax.text(left - 0.1, -(top + bottom) / 2, f"b{block}\nQ{quartile[block]}",
                ha="right", va="center", fontsize=7)  # fmt: skip


def draw(view: nx.DiGraph, partition: Partition, legend: Legend, title: str, fmt: str) -> bytes:
    """The picture as PNG or SVG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    pos = layered_layout(view)
    ranks = max(r for _, r in pos.values()) + 1
    width = max(x for x, _ in pos.values()) - min(x for x, _ in pos.values()) + 1
    fig_w, fig_h = max(7.0, width * _COLUMN_WIDTH + 2.5), max(4.0, ranks * _RANK_HEIGHT + 1.5)
    fig, ax = plt.subplots(figsize=(fig_w, fig_h))
    left = min(x for x, _ in pos.values()) - 1.3
    ax.set_xlim(left - 0.6, max(x for x, _ in pos.values()) + 1.0)
    ax.set_ylim(-ranks + 0.3, 1.2)
    ax.axis("off")
    _draw_edges(ax, view, pos)
    _draw_nodes(ax, view, pos)
    _draw_block_bars(ax, view, pos, partition, left)
    handles = [Patch(facecolor=c, edgecolor="#444444", label=label) for label, c in legend.entries]
    ax.legend(handles=handles, loc="upper right", fontsize=8, frameon=False)
    ax.set_title(title, fontsize=11, loc="left")
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
