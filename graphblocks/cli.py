"""``graphblocks`` command line: parses arguments, calls the API, prints.

Heavy modules (torch, timm, networkx) are imported inside the commands so that
``--help`` is instant and start-up stays close to bare ``import timm``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from graphblocks import __version__
from graphblocks.commandline import OneLineErrors, RegistryChoice, debug_option
from graphblocks.errors import GraphblocksError
from graphblocks.frontends import FALLBACK_CHAIN, FRONTENDS
from graphblocks.ops import ALL_BOUNDARY_CLASSES, DEFAULT_MAX_CROSSING

if TYPE_CHECKING:
    from graphblocks.pipeline import Analysis, Settings

F = Callable[..., Any]


def _export_formats() -> list[str]:
    from graphblocks.exports import EXPORTERS

    return list(EXPORTERS)


def _render_engines() -> tuple[str, ...]:
    from graphblocks.render import ENGINES

    return ENGINES


def _zoo_sources() -> list[str]:
    from graphblocks.zoo.models import SOURCES

    return [*SOURCES, "all"]


def _analysis_options(fn: F) -> F:
    """Options shared by every command that analyzes a model."""
    options: list[Callable[[F], F]] = [
        click.argument("model"),
        click.option("--input-size", metavar="C,H,W", help="Input shape without batch (default: timm's pretrained_cfg, else 3,224,224)."),
        click.option("--model-arg", "model_args", multiple=True, metavar="KEY=VALUE", help="Keyword argument for the model factory; repeatable (e.g. num_classes=10)."),
        click.option("--delimiters", default=",".join(ALL_BOUNDARY_CLASSES), show_default=True, metavar="LIST", help=f"Which cut-vertex classes may end a block: any of {', '.join(ALL_BOUNDARY_CLASSES)}."),
        click.option("--max-blocks", type=click.IntRange(min=1), help="Merge adjacent blocks, smallest pair first, until at most N remain."),
        click.option("--max-crossing", type=click.IntRange(min=1), default=DEFAULT_MAX_CROSSING, show_default=True, metavar="K", help="Cut only where at most K tensors cross (1: single-tensor cuts only, as in v1 partitions)."),
        click.option("--frontend", type=click.Choice(["auto", *FRONTENDS]), default="auto", show_default=True, help=f"Capture with this frontend only (auto: {', then '.join(FALLBACK_CHAIN)})."),
        debug_option,
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def _output_option(help_text: str, *, folder: bool = False) -> Callable[[F], F]:
    """The required ``-o/--output FILE`` option (``folder``: a folder may be given)."""
    return click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=folder, path_type=Path),
        required=True,
        help=help_text,
    )


def _settings(
    input_size: str | None,
    model_args: tuple[str, ...],
    delimiters: str,
    max_blocks: int | None,
    max_crossing: int,
    frontend: str,
) -> Settings:
    from graphblocks.pipeline import Settings
    from graphblocks.sources import parse_input_size, parse_model_args

    return Settings(
        delimiters=tuple(d.strip() for d in delimiters.split(",") if d.strip()),
        max_blocks=max_blocks,
        max_crossing=max_crossing,
        input_size=parse_input_size(input_size) if input_size else None,
        model_args=parse_model_args(model_args),
        frontends=FALLBACK_CHAIN if frontend == "auto" else (frontend,),
    )


def _run(model: str, **options: Any) -> Analysis:
    import warnings

    from graphblocks.pipeline import analyze_model

    settings = _settings(**options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # factories' deprecation chatter is not the user's problem
        return analyze_model(model, settings)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="graphblocks")
@debug_option
def cli() -> None:
    """Cut a network into residual-safe blocks and quartiles.

    MODEL is a timm name (resnet50), torchvision:NAME, package.module:factory or
    path/to/file.py:factory. No weights are downloaded: analysis needs only structure.
    """


def _indices(text: str | None) -> tuple[int, ...]:
    """``3,4`` → ``(3, 4)``; a one-line error for anything but integers."""
    try:
        return tuple(int(x) for x in (text or "").split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a list of integers, e.g. 3,4") from None


@cli.command()
@_analysis_options
@click.option(
    "--json", "as_json", is_flag=True, help="Print the partition JSON instead of the table."
)
def inspect(model: str, as_json: bool, **options: Any) -> None:
    """Show the blocks of MODEL: quartile, layer range, parameters and share.

    \b
    Examples:
      graphblocks inspect resnet50
      graphblocks inspect torchvision:vgg16 --max-blocks 8
      graphblocks inspect my_models.py:build --model-arg width=64 --json
    """
    result = _run(model, **options)
    if as_json:
        click.echo(result.partition.to_json(), nl=False)
        return
    from graphblocks.tables import print_partition

    print_partition(result.partition, seconds=result.seconds)


@cli.command()
@_analysis_options
@_output_option("Where to write the partition JSON.")
def partition(model: str, output: Path, **options: Any) -> None:
    """Write the partition of MODEL as JSON (schema-checked, byte-stable).

    \b
    Example:
      graphblocks partition resnet50 -o resnet50.blocks.json
    """
    result = _run(model, **options)
    result.partition.save(output)
    p = result.partition
    click.echo(f"wrote {output}: {p.num_blocks} blocks + head, {p.model.num_params:,} parameters")


@cli.command()
@_analysis_options
@_output_option("FILE.graphml or FILE.json (node-link).")
def graph(model: str, output: Path, **options: Any) -> None:
    """Write the annotated DAG of MODEL as GraphML or node-link JSON.

    Each node carries kind, op, module, params, shape, dtype, the delimiter and
    merge flags, and its block (-1 for the head, -2 for nodes in no block).

    \b
    Example:
      graphblocks graph resnet18 -o resnet18.graphml
    """
    from graphblocks.graph_io import GRAPH_WRITERS, write_graph

    suffix = output.suffix.lower()
    if suffix not in GRAPH_WRITERS:
        raise GraphblocksError(
            f"cannot write a graph as {suffix or 'no extension'!r}",
            f"use one of {', '.join(GRAPH_WRITERS)}",
        )
    result = _run(model, **options)
    write_graph(result.graph, result.partition, output, result.node_blocks)
    click.echo(
        f"wrote {output}: {result.graph.number_of_nodes()} nodes, {result.graph.number_of_edges()} edges"
    )


@cli.command()
@click.argument(
    "partition_file",
    metavar="PARTITION",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--to",
    "fmt",
    required=True,
    type=RegistryChoice(_export_formats),
    help="The format to write.",
)
@_output_option("Where to write the export (model-explorer: a folder).", folder=True)
@click.option(
    "--model",
    help="The model to annotate or re-analyze (onnx, keras, graphml, model-explorer); default: the one named in the partition.",
)
@click.option(
    "--lr-scale",
    "lr_scales",
    multiple=True,
    metavar="BLOCK=SCALE",
    help="param-groups: learning-rate multiplier for a block index or 'head'; repeatable.",
)
@click.option(
    "--layer-decay",
    type=click.FloatRange(min=0, max=1, min_open=True),
    help="param-groups: block i of N gets DECAY**(N-i), the head 1 (timm's layer-wise decay).",
)
@click.option(
    "--blocks",
    callback=lambda _ctx, _param, value: _indices(value),
    metavar="I,J,...",
    help="peft: the blocks to adapt (with --quartiles: both; default: every block).",
)
@click.option(
    "--quartiles",
    callback=lambda _ctx, _param, value: _indices(value),
    metavar="Q,...",
    help="peft: the quartiles (1-4) whose blocks to adapt.",
)
@debug_option
def export(
    partition_file: Path,
    fmt: str,
    output: Path,
    model: str | None,
    lr_scales: tuple[str, ...],
    layer_decay: float | None,
    blocks: tuple[int, ...],
    quartiles: tuple[int, ...],
) -> None:
    """Write PARTITION (a partition JSON) for another tool or framework.

    \b
    Examples:
      graphblocks export resnet50.blocks.json --to param-groups --layer-decay 0.7 -o groups.json
      graphblocks export resnet50.blocks.json --to timm -o resnet50.timm-groups.json
      graphblocks export vit.blocks.json --to peft --quartiles 4 -o lora.json
      graphblocks export model.blocks.json --to onnx -o model.blocks.onnx
      graphblocks export keras.blocks.json --to keras -o keras-blocks.json
      graphblocks export resnet50.blocks.json --to csv -o resnet50.layers.csv
      graphblocks export resnet50.blocks.json --to model-explorer -o resnet50.me/
    """  # fmt: skip
    from graphblocks.exports import ExportOptions, export_partition
    from graphblocks.exports.param_groups import layer_decay_scales, parse_lr_scales
    from graphblocks.partition import Partition

    partition = Partition.load(partition_file)
    scales = layer_decay_scales(partition.num_blocks, layer_decay) if layer_decay else {}
    scales.update(parse_lr_scales(lr_scales))
    options = ExportOptions(model=model, lr_scales=scales, blocks=blocks, quartiles=quartiles)
    export_partition(partition, fmt, output, options)
    click.echo(f"wrote {output} ({fmt})")


@cli.command()
@_analysis_options
@_output_option("FILE.svg, FILE.png or FILE.html.")
@click.option(
    "--collapse", is_flag=True, help="One box per block (params, layer range): for big models."
)
@click.option(
    "--engine",
    type=RegistryChoice(_render_engines),
    default="auto",
    show_default=True,
    help="Graphviz dot, or the pure-Python layout (auto: dot when installed).",
)
def render(model: str, output: Path, collapse: bool, engine: str, **options: Any) -> None:
    """Draw the DAG of MODEL (or of a partition JSON) coloured by block.

    Nodes are layers, delimiters and residual merges (red circles), top to bottom;
    skip edges are dashed red; the legend maps colours to quartiles.

    \b
    Examples:
      graphblocks render resnet50 --collapse -o resnet50.png
      graphblocks render resnet18 -o resnet18.svg
      graphblocks render resnet50.blocks.json -o resnet50.html
    """  # fmt: skip
    from graphblocks.render import render as draw

    if model.lower().endswith(".json"):
        from graphblocks.exports import reanalyze
        from graphblocks.partition import Partition

        result = reanalyze(Partition.load(model))
    else:
        result = _run(model, **options)
    draw(result, output, collapse=collapse, engine=engine)
    click.echo(f"wrote {output}")


@cli.command("port-weights")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option(
    "--to",
    "target",
    required=True,
    metavar="MODEL",
    help="The model the weights are for (its names and graph order).",
)
@click.option(
    "--from",
    "source",
    metavar="MODEL",
    help="The model the checkpoint was saved from: pair by its graph order, so key names and key order do not matter.",
)
@click.option(
    "--model-arg",
    "model_args",
    multiple=True,
    metavar="KEY=VALUE",
    help="Keyword argument for the --to model's factory; repeatable.",
)
@_output_option("Where to write the ported weights (.safetensors).")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the mapping as JSON instead of the table."
)
@debug_option
def port_weights(
    checkpoint: Path,
    target: str,
    source: str | None,
    model_args: tuple[str, ...],
    output: Path,
    as_json: bool,
) -> None:
    """Port CHECKPOINT (.pth, .pt, .bin, .safetensors, or a save_pretrained folder) from
    another implementation onto MODEL by graph structure: the i-th tensor the source uses
    goes to the i-th the target uses, shapes checked. Nothing is written unless every
    tensor fits. An hf: target gets its modules' names (load them with load_state_dict).

    \b
    Examples:
      graphblocks port-weights efficientnet-lite0.pth --to efficientnet_lite0 -o lite0.safetensors
      graphblocks port-weights tv_mnv2.pth --from torchvision:mobilenet_v2 --to mobilenetv2_100 -o m.safetensors
      graphblocks port-weights hf-resnet50/ --from hf:hf-resnet50 --to resnet50 -o r50.safetensors
    """  # fmt: skip
    from graphblocks.porting import port_checkpoint, save_state_dict
    from graphblocks.sources import parse_model_args

    if output.suffix != ".safetensors":
        raise GraphblocksError(
            f"cannot write ported weights as {output.suffix or 'no extension'!r}",
            "name the output FILE.safetensors",
        )
    ported = port_checkpoint(checkpoint, target, source, parse_model_args(model_args))
    save_state_dict(output, ported.state)
    if as_json:
        click.echo(json.dumps({"checkpoint": str(checkpoint), "to": target, "output": str(output), **ported.to_dict()}, indent=1))  # fmt: skip
        return
    from rich.console import Console

    from graphblocks.tables import port_table

    console = Console()
    console.print(port_table(ported, f"{checkpoint.name} → {target}"))
    click.echo(f"wrote {output}: {len(ported.pairs)} tensors ported from the {ported.layout}")


@cli.command()
@click.option(
    "--source",
    type=RegistryChoice(_zoo_sources),
    default="all",
    show_default=True,
    help="Which zoo to run.",
)
@click.option(
    "--pattern",
    default="*",
    show_default=True,
    help="Glob over model names (torchvision names without the prefix).",
)
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    help="Run a stratified sample: one model from each of N families.",
)
@click.option(
    "--jobs", type=click.IntRange(min=1), default=2, show_default=True, help="Worker processes."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=300,
    show_default=True,
    help="Seconds per model before its worker is killed.",
)
@click.option(
    "--memory-gb",
    type=click.FloatRange(min=0.5),
    default=8,
    show_default=True,
    help="Address-space cap per worker.",
)
@click.option(
    "--resume", is_flag=True, help="Skip models already in the report and append the rest."
)
@_output_option("The report CSV, one row per model.")
@debug_option
def zoo(**options: Any) -> None:
    """Partition every model of a zoo and validate it: coverage, agreement, timings.

    Each model runs in a worker process with a time limit and a memory cap; a
    crash, hang or OOM in one model never stops the run. Rows are appended as
    models finish, so an interrupted run continues with --resume.

    \b
    Examples:
      graphblocks zoo --source all -o zoo.csv
      graphblocks zoo --source timm --pattern 'resnet*' --jobs 2 -o resnets.csv
      graphblocks zoo --sample 30 -o sample.csv
    """
    from graphblocks.zoo.progress import run_zoo_with_progress
    from graphblocks.zoo.run import ZooRun

    run_zoo_with_progress(ZooRun(**options))


@cli.command("zoo-report")
@click.argument("report", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_output_option("Where to write the markdown (e.g. docs/zoo.md).")
@debug_option
def zoo_report(report: Path, output: Path) -> None:
    """Write the markdown summary of a zoo REPORT: coverage per family, agreement with
    timm's groups (with the reasons for disagreement), timings.

    \b
    Example:
      graphblocks zoo-report zoo.csv -o docs/zoo.md
    """
    from graphblocks.atomic import write_atomic
    from graphblocks.zoo.markdown import zoo_markdown

    write_atomic(output, zoo_markdown(report))
    click.echo(f"wrote {output}")


@cli.command()
@click.argument("target", metavar="MODEL|PARTITION.json|RUN_DIR")
@click.option(
    "--port", type=click.IntRange(1, 65535), help="The port on 127.0.0.1 [8080, else a free one]."
)
@click.option("--no-browser", is_flag=True, help="Print the URL; do not open a browser.")
@click.option("--input-size", metavar="C,H,W", help="Input shape when TARGET is a model.")
@debug_option
def view(target: str, port: int | None, no_browser: bool, input_size: str | None) -> None:
    """Show TARGET's blocks in Google's Model Explorer: expand a block, hover a layer,
    search; a run folder adds each block's accuracy and B_opt, or RL-Tune's rates.

    Serves on 127.0.0.1 only, until Ctrl-C. Needs the view extra.

    \b
    Examples:
      graphblocks view resnet50
      graphblocks view runs/resnet18 --no-browser --port 8090
    """
    from graphblocks.sources import parse_input_size
    from graphblocks.view import view as serve_view

    size = parse_input_size(input_size) if input_size else None
    serve_view(target, port=port, open_browser=not no_browser, input_size=size)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="graphblocks")


if __name__ == "__main__":
    main()
