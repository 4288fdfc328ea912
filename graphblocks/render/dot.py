"""Draw a view with Graphviz's ``dot`` (top to bottom, one cluster per block)."""

from __future__ import annotations

import shutil
import subprocess

import networkx as nx

from graphblocks.errors import GraphblocksError
from graphblocks.partition import Partition
from graphblocks.render.view import SKIP_COLOR, Legend, block_color

_SHAPES = {"layer": "box", "delimiter": "ellipse", "merge": "circle", "io": "oval"}


def dot_available() -> bool:
    """True when the Graphviz ``dot`` binary is on the PATH."""
    return shutil.which("dot") is not None


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _node_line(node: str, data: dict[str, object]) -> str:
    kind = str(data["kind"])
    attrs = {
        "label": str(data["label"]),
        "tooltip": str(data["tooltip"]),
        "shape": _SHAPES[kind],
        "fillcolor": str(data["color"]),
        "style": "filled,rounded" if kind == "layer" else "filled",
    }
    if kind == "merge":
        attrs.update(color=SKIP_COLOR, fixedsize="true", width="0.35", fontsize="12")
    elif kind == "delimiter":
        attrs.update(fontsize="9", height="0.25")
    body = ", ".join(f"{k}={_quote(v)}" for k, v in attrs.items())
    return f"  {_quote(node)} [{body}];"


def dot_source(view: nx.DiGraph, partition: Partition, legend: Legend, title: str) -> str:
    """The view in the DOT language, with a block cluster per block and a legend."""
    lines = [
        "digraph graphblocks {",
        f"  graph [rankdir=TB, labelloc=t, fontsize=16, label={_quote(title)}, nodesep=0.25, ranksep=0.3];",
        '  node [fontname="Helvetica", fontsize=10, margin="0.08,0.03", height=0.3];',
        '  edge [arrowsize=0.6, color="#555555"];',
    ]
    quartile = {b.index: b.quartile for b in partition.blocks}
    by_block: dict[int, list[str]] = {}
    for node, block in view.nodes(data="block"):
        by_block.setdefault(int(block), []).append(node)
    for block, nodes in by_block.items():
        inside = [_node_line(n, view.nodes[n]) for n in nodes]
        if view.graph.get("collapsed"):  # a box per block already says which block
            lines += inside
            continue
        if block < 0:
            lines += (
                inside
                if block == -2
                else [
                    "  subgraph cluster_head {",
                    '    label="head"; style="rounded,dashed";',
                    *inside,
                    "  }",
                ]
            )
            continue
        fill = block_color(block, quartile[block])
        lines += [
            f"  subgraph cluster_{block} {{",
            f'    label="block {block} · Q{quartile[block]}"; labeljust=l; style="rounded"; color={_quote(fill)};',
            *inside,
            "  }",
        ]
    for u, v, skip in view.edges(data="skip"):
        style = f' [color="{SKIP_COLOR}", style=dashed, penwidth=1.4]' if skip else ""
        lines.append(f"  {_quote(u)} -> {_quote(v)}{style};")
    rows = "".join(
        f'<TR><TD BGCOLOR="{color}" WIDTH="18"></TD><TD ALIGN="LEFT">{label}</TD></TR>'
        for label, color in legend.entries
    )
    lines.append(
        f'  legend [shape=plaintext, label=<<TABLE BORDER="0" CELLSPACING="2">{rows}</TABLE>>];'
    )
    lines.append("}")
    return "\n".join(lines) + "\n"


def run_dot(source: str, fmt: str) -> bytes:
    """``dot -T<fmt>`` on ``source``; raises a one-line error when dot fails."""
    try:
        done = subprocess.run(
            ["dot", f"-T{fmt}"], input=source.encode(), capture_output=True, check=True, timeout=600
        )
    except (OSError, subprocess.SubprocessError) as exc:
        stderr = getattr(exc, "stderr", b"") or b""
        raise GraphblocksError(
            f"Graphviz dot failed: {stderr.decode(errors='replace').strip()[:200] or exc}",
            "render with --engine python",
        ) from exc
    return done.stdout
