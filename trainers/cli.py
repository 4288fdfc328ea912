"""``graphblocks-train``: fine-tune on a partition. Parses flags, calls the API, prints."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from graphblocks.cli import OneLineErrors, debug_option

F = Callable[..., Any]


def _shares(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        from trainers.config import ConfigError

        raise ConfigError(f"bad --split {text!r}", "write three shares, e.g. 0.7,0.2,0.1") from None


def _sizes(text: str) -> list[int]:
    from graphblocks.sources import parse_input_size

    return list(parse_input_size(text))


def _model_args(pairs: tuple[str, ...]) -> dict[str, Any]:
    from graphblocks.sources import parse_model_args

    return parse_model_args(pairs)


def _run_options(fn: F) -> F:
    """Every setting of :class:`trainers.config.TrainConfig` as a flag."""
    options: list[Callable[[F], F]] = [
        click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), help="TOML or YAML file of settings; flags override it."),
        click.option("--model", help="timm name, torchvision:NAME or module:factory (default: the partition's)."),
        click.option("--model-arg", "model_args", multiple=True, metavar="KEY=VALUE", help="Keyword argument for the model factory; repeatable (e.g. img_size=64)."),
        click.option("--data", help="ImageFolder dir, a dir with train/ val/ [test/], or a CSV of path,label."),
        click.option("--out", help="The run folder."),
        click.option("--partition", type=click.Path(exists=True, dir_okay=False), help="Partition JSON (computed when not given)."),
        click.option("--epochs", type=int, help="Epochs per job [10]."),
        click.option("--batch-size", type=int, help="Batch size [24]."),
        click.option("--lr", type=float, help="Adam learning rate [1e-3]."),
        click.option("--weight-decay", type=float, help="Adam weight decay [0]."),
        click.option("--schedule", type=click.Choice(["constant", "cosine"]), help="Learning-rate schedule [constant]."),
        click.option("--patience", type=int, help="Stop after N epochs without a better validation accuracy [off]."),
        click.option("--input-size", help="C,H,W [the partition's]."),
        click.option("--split", help="Train,val,test shares [0.7,0.2,0.1]."),
        click.option("--sample-rate", type=float, help="Stratified share of the training split to keep [1.0]."),
        click.option("--preprocess", type=click.Choice(["unit", "timm"]), help="unit: scale to [0, 1] (the paper's); timm: the model's mean/std [unit]."),
        click.option("--augment/--no-augment", default=None, help="Random flips and shifts (turns the activation cache off) [off]."),
        click.option("--strict/--no-strict", default=None, help="Fail on an unreadable image instead of skipping it [off]."),
        click.option("--pretrained/--no-pretrained", default=None, help="timm / torchvision pretrained weights [on]."),
        click.option("--weights", type=click.Path(exists=True, dir_okay=False), help="Weights file (.safetensors or a state dict)."),
        click.option("--head", type=click.Choice(["paper", "linear"]), help="paper: Linear 512, ReLU, Dropout 0.5, Linear; linear: one Linear [paper]."),
        click.option("--bn", type=click.Choice(["train", "frozen"]), help="The tuned block's BatchNorm: batch statistics, or running ones [train]."),
        click.option("--seed", type=int, help="Seed of the split, sampling and every job [0]."),
        click.option("--deterministic/--no-deterministic", default=None, help="torch.use_deterministic_algorithms [off]."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), help="[auto]"),
        click.option("--amp/--no-amp", default=None, help="Mixed precision on CUDA [on]."),
        click.option("--cache", type=click.Choice(["auto", "memory", "disk", "off"]), help="Activation cache before the tuned block [auto]."),
        click.option("--cache-dtype", type=click.Choice(["float16", "float32"]), help="[float16]"),
        click.option("--cache-memory-gb", type=float, help="[4]"),
        click.option("--cache-disk-gb", type=float, help="[20]"),
        click.option("--resume/--no-resume", default=None, help="Continue a run folder: finished jobs are not rerun."),
        debug_option,
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def _given(ctx: click.Context, values: dict[str, Any]) -> dict[str, Any]:
    """The flags the user typed (not defaults), converted to settings."""
    converters: dict[str, Callable[[Any], Any]] = {
        "split": _shares,
        "input_size": _sizes,
        "model_args": _model_args,
    }
    given = {}
    for key, value in values.items():
        if (
            value in (None, ())
            or ctx.get_parameter_source(key) != click.core.ParameterSource.COMMANDLINE
        ):
            continue
        given[key] = converters.get(key, lambda v: v)(value)
    return given


def _execute(ctx: click.Context, config_file: str | None, values: dict[str, Any]) -> None:
    from trainers.config import resolve_config
    from trainers.report import print_results, progress_printer, render_plots
    from trainers.session import run

    fixed = values.pop("_fixed", {})
    config = resolve_config(config_file, {**_given(ctx, values), **fixed})
    with progress_printer() as progress:
        document = run(config, progress)
    print_results(document)
    render_plots(Path(config.out), document)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@debug_option
def cli() -> None:
    """Fine-tune a model block by block on a graphblocks partition (Barakat & Huang 2023)."""


@cli.command()
@_run_options
@click.pass_context
def sweep(ctx: click.Context, config_file: str | None, **values: Any) -> None:
    """Algorithm 1: every block + head, then BL1 (head) and BL2 (all); B_opt on validation.

    \b
    Example:
      graphblocks-train sweep --model resnet18 --data flowers/ --out runs/r18 --epochs 10
    """
    values["_fixed"] = {"strategy": "sweep"}
    _execute(ctx, config_file, values)


@cli.command("run")
@_run_options
@click.option(
    "--strategy",
    type=click.Choice(["head", "full", "block", "quartile", "layers", "sweep"]),
    help="What trains [sweep].",
)
@click.option("--block", type=int, help="The block of --strategy block.")
@click.option("--quartile", type=int, help="The quartile of --strategy quartile.")
@click.option("--names", multiple=True, help="Layer names of --strategy layers; repeatable.")
@click.pass_context
def run_command(ctx: click.Context, config_file: str | None, **values: Any) -> None:
    """One strategy: head (BL1), full (BL2), block K, quartile Q, layers, or sweep.

    \b
    Examples:
      graphblocks-train run --strategy block --block 12 --model resnet50 --data d/ --out runs/b12
      graphblocks-train run --config runs/b12/config.toml --out runs/b12-again
    """
    names = values.pop("names")
    values["_fixed"] = {"names": list(names)} if names else {}
    _execute(ctx, config_file, values)


@cli.command()
@_run_options
@click.option("--episodes", type=int, help="Episodes of episodic moving-average control [5].")
@click.option("--epochs-per-episode", type=int, help="Epochs per episode [10] (same as --epochs).")
@click.option(
    "--granularity",
    type=click.Choice(["layer", "block"]),
    help="One learning rate per weighted layer, or per block [layer].",
)
@click.option("--lr-steps", type=int, help="Learning rates to choose from [20].")
@click.option("--lr-min", type=float, help="Smallest rate, included [0].")
@click.option("--lr-max", type=float, help="Largest rate, included [0.01].")
@click.option(
    "--ema", type=float, help="After each episode: source ← (1 − EMA)·source + EMA·target [0.2]."
)
@click.option(
    "--reward",
    type=click.Choice(["eval", "train"]),
    help="Reward forward pass in eval or training mode [eval].",
)
@click.pass_context
def rltune(ctx: click.Context, config_file: str | None, **values: Any) -> None:
    """RL-Tune: a PPO agent picks each layer's (or block's) learning rate at every step;
    then the uniform-learning-rate baseline with the same budget.

    \b
    Example:
      graphblocks-train rltune --model resnet50 --data cub/ --out runs/rl --sample-rate 0.15
    """  # fmt: skip
    per_episode = values.pop("epochs_per_episode")
    fixed: dict[str, Any] = {"strategy": "rltune"}
    if per_episode is not None:
        fixed["epochs"] = per_episode
    values["_fixed"] = fixed
    _execute(ctx, config_file, values)


@cli.command()
@click.argument(
    "run_dirs",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the combined plots of several runs.",
)
@debug_option
def report(run_dirs: tuple[Path, ...], output: Path | None) -> None:
    """Print the results of RUN_DIR(s) and render their plots (several runs: one box
    per model in each quartile's panel)."""
    from trainers.report import load_results, print_results, render_plots

    documents = [load_results(d) for d in run_dirs]
    for run_dir, document in zip(run_dirs, documents, strict=True):
        print_results(document)
        render_plots(run_dir, document)
    if len(documents) > 1:
        from trainers.plots import plot_quartiles

        target = (output or Path(".")) / "quartiles.png"
        plot_quartiles(documents, target)
        click.echo(f"wrote {target}")


def _folders(pairs: tuple[str, ...]) -> dict[str, str]:
    from trainers.config import ConfigError

    folders = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise ConfigError(
                f"bad --data {pair!r}", "write TARGET=DIR, e.g. flowers102=~/data/flowers"
            )
        folders[name] = path
    return folders


@cli.command()
@click.argument("config_file", metavar="CONFIG", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", help="Folder of the study's data, checkpoints and runs [the config's].")
@click.option("--docs", help="The report to write [the config's, docs/study.md].")
@click.option("--images", help="Folder of the report's figures [the config's].")
@click.option("--workers", type=int, help="Worker processes [the config's].")
@click.option(
    "--data",
    "data",
    multiple=True,
    metavar="TARGET=DIR",
    help="Use an image folder for that target; repeatable.",
)
@click.option("--report-only", is_flag=True, help="Only rebuild the report from the finished runs.")
@debug_option
def study(config_file: str, report_only: bool, data: tuple[str, ...], **overrides: Any) -> None:
    """A whole transfer study from one config file: pre-training, BL1, BL2, every block,
    B_opt, quartiles, RL-Tune and uniform over models × targets × seeds × sampling
    rates, then the report (docs/study.md). Rerun to resume.

    \b
    Examples:
      graphblocks-train study configs/study.toml
      graphblocks-train study configs/paper-flowers102.toml --data flowers102=data/flowers102
    """  # fmt: skip
    from rich.console import Console

    from trainers.study import load_study, run_study

    config = load_study(config_file, {**overrides, "data": _folders(data)})
    console = Console(stderr=True)

    def progress(what: str, done: int, total: int) -> None:
        console.print(f"[{done}/{total}] {what}")

    path = run_study(config, progress, report_only=report_only)
    click.echo(f"wrote {path}")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="graphblocks-train")


if __name__ == "__main__":
    main()
