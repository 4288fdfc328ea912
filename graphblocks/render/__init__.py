"""Pictures of a partition: ``render(analysis, "model.svg")``.

The DAG is drawn top to bottom with nodes coloured by block (one hue per quartile,
alternating shades), residual merges as red circles and skip edges dashed red; the
``collapse`` view draws one box per block. Graphviz's ``dot`` draws when it is
installed (Debian package ``graphviz``), a pure-Python layered layout with matplotlib
otherwise. ``.html`` wraps the SVG in a page with the block table.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from graphblocks.atomic import atomic_target
from graphblocks.errors import GraphblocksError

if TYPE_CHECKING:
    from graphblocks.pipeline import Analysis

ENGINES = ("auto", "dot", "python")
FORMATS = (".svg", ".png", ".html")


def _title(analysis: Analysis) -> str:
    p = analysis.partition
    return f"{p.model.name}: {p.num_blocks} blocks + head ({p.model.frontend})"


def _draw(analysis: Analysis, fmt: str, collapse: bool, engine: str) -> bytes:
    from graphblocks.render import dot, mpl
    from graphblocks.render.view import block_view, layer_view, legend

    p = analysis.partition
    view = block_view(p) if collapse else layer_view(analysis.graph, p, analysis.node_blocks)
    if engine == "auto":
        engine = "dot" if dot.dot_available() else "python"
    if engine == "dot":
        if not dot.dot_available():
            raise GraphblocksError(
                "Graphviz dot is not installed",
                "install it (apt install graphviz) or use --engine python",
            )
        return dot.run_dot(dot.dot_source(view, p, legend(p), _title(analysis)), fmt)
    return mpl.draw(view, p, legend(p), _title(analysis), fmt)


def html_page(analysis: Analysis, svg: str) -> str:
    """A standalone page: the SVG, then one table row per block."""
    p = analysis.partition
    rows = "".join(
        f"<tr><td>{b.index}</td><td>Q{b.quartile}</td><td>{html.escape(b.layers[0])} → "
        f"{html.escape(b.layers[-1])}</td><td>{len(b.layers)}</td><td>{b.num_params:,}</td></tr>"
        for b in p.blocks
    )
    rows += f"<tr><td>head</td><td></td><td>{html.escape(', '.join(p.head.layers))}</td>"
    rows += f"<td>{len(p.head.layers)}</td><td>{p.head.num_params:,}</td></tr>"
    start = svg.find("<svg")
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(_title(analysis))}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px}svg{max-width:100%;height:auto}</style>"
        f"</head><body><h1>{html.escape(_title(analysis))}</h1>\n{svg[max(start, 0) :]}\n"
        "<table><tr><th>block</th><th>quartile</th><th>layers</th><th>#</th><th>params</th></tr>"
        f"{rows}</table></body></html>\n"
    )


def render(
    analysis: Analysis, out: str | Path, *, collapse: bool = False, engine: str = "auto"
) -> Path:
    """Draw ``analysis`` into ``out`` (.svg, .png or .html); return the path."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise GraphblocksError(
            f"cannot render to {suffix or 'no extension'!r}", f"use one of {', '.join(FORMATS)}"
        )
    if engine not in ENGINES:
        raise GraphblocksError(f"unknown engine {engine!r}", f"choose from {', '.join(ENGINES)}")
    fmt = "svg" if suffix == ".html" else suffix[1:]
    picture = _draw(analysis, fmt, collapse, engine)
    data = html_page(analysis, picture.decode()).encode() if suffix == ".html" else picture
    with atomic_target(out) as tmp:
        tmp.write_bytes(data)
    return out
