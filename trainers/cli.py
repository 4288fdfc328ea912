"""``graphblocks-train``: fine-tune on a partition. Parses flags, calls the API, prints."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args, get_type_hints

import click

from graphblocks import OneLineErrors, debug_option
from trainers.settings.kinds import ExecutorKind

F = Callable[..., Any]


def _option(spec: Any, command: str, hints: dict[str, Any]) -> Callable[[F], F]:
    """The click option of one setting (see :class:`trainers.settings.config.SettingInfo`)."""
    info = spec.info
    names = [spec.flag, *info.aliases.get(command, ())]
    text = f"{info.help} [{spec.shown_default()}]"
    if info.syntax == "flag":
        return click.option(f"{spec.flag}/--no-{spec.flag[2:]}", spec.name, default=None, help=text)
    if info.syntax == "multiple":
        return click.option(*names, spec.name, multiple=True, metavar=info.metavar, help=text)
    kind: Any = str
    if info.choices is not None:
        kind = click.Choice(info.choices)
    elif info.parse is None:
        kind = next(
            t for t in get_args(hints[spec.name]) or (hints[spec.name],) if t is not type(None)
        )
    return click.option(*names, spec.name, type=kind, metavar=info.metavar, help=text)


def _setting_options(command: str) -> Callable[[F], F]:
    """``--config`` and every setting of :class:`trainers.settings.config.TrainConfig` that
    ``command`` offers, as flags."""
    from trainers.settings.config import TrainConfig, settings

    hints = get_type_hints(TrainConfig)

    def decorate(fn: F) -> F:
        specs = [s for s in settings() if command in s.info.commands]
        for spec in reversed(specs):
            fn = _option(spec, command, hints)(fn)
        fn = click.option(
            "--config",
            "config_file",
            type=click.Path(exists=True, dir_okay=False),
            help="TOML or YAML file of settings; flags override it.",
        )(fn)
        return debug_option(fn)

    return decorate


def _given(ctx: click.Context, values: dict[str, Any]) -> dict[str, Any]:
    """The flags the user typed (not defaults), as settings."""
    from trainers.settings.config import settings

    parsers = {s.name: s.info.parse for s in settings() if s.info.parse is not None}
    given = {}
    for key, value in values.items():
        if (
            value in (None, ())
            or ctx.get_parameter_source(key) != click.core.ParameterSource.COMMANDLINE
        ):
            continue
        given[key] = parsers[key](value) if key in parsers else value
    return given


def _execute(
    ctx: click.Context, config_file: str | None, values: dict[str, Any], **fixed: Any
) -> None:
    """Resolve the settings (``fixed``: what the command itself sets), run, print."""
    from trainers.report.console import print_results, progress_printer
    from trainers.report.plots import render_plots
    from trainers.session import run
    from trainers.settings.config import resolve_config

    config = resolve_config(config_file, {**_given(ctx, values), **fixed})
    with progress_printer() as progress:
        results = run(config, progress)
    print_results(results)
    render_plots(Path(config.out), results)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@debug_option
def cli() -> None:
    """Fine-tune a model block by block on a graphblocks partition (Barakat & Huang 2023)."""


@cli.command()
@_setting_options("sweep")
@click.pass_context
def sweep(ctx: click.Context, config_file: str | None, **values: Any) -> None:
    """Algorithm 1: every block + head, then BL1 (head) and BL2 (all); B_opt on validation.

    \b
    Example:
      graphblocks-train sweep --model resnet18 --data flowers/ --out runs/r18 --epochs 10
    """
    _execute(ctx, config_file, values, strategy="sweep")


@cli.command("run")
@_setting_options("run")
@click.pass_context
def run_command(ctx: click.Context, config_file: str | None, **values: Any) -> None:
    """One strategy: head (BL1), full (BL2), block K, quartile Q, layers, sweep, or
    lp-ft, layer-decay, l2-sp, auto-rgn.

    \b
    Examples:
      graphblocks-train run --strategy block --block 12 --model resnet50 --data d/ --out runs/b12
      graphblocks-train run --config runs/b12/config.toml --out runs/b12-again
    """
    _execute(ctx, config_file, values)


@cli.command()
@_setting_options("rltune")
@click.pass_context
def rltune(ctx: click.Context, config_file: str | None, **values: Any) -> None:
    """RL-Tune: a PPO agent picks each layer's (or block's) learning rate at every step;
    then the uniform-learning-rate baseline with the same budget.

    \b
    Example:
      graphblocks-train rltune --model resnet50 --data cub/ --out runs/rl --sample-rate 0.15
    """
    _execute(ctx, config_file, values, strategy="rltune")


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
    from trainers.jobs.results import load_results
    from trainers.report.console import print_results
    from trainers.report.plots import plot_quartiles, render_plots

    runs = [load_results(d) for d in run_dirs]
    for run_dir, results in zip(run_dirs, runs, strict=True):
        print_results(results)
        render_plots(run_dir, results)
    if len(runs) > 1:
        target = (output or Path(".")) / "quartiles.png"
        plot_quartiles(runs, target)
        click.echo(f"wrote {target}")


def _folders(pairs: tuple[str, ...]) -> dict[str, str]:
    from trainers.settings.config import ConfigError

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
@click.option(
    "--workers",
    type=int,
    help="Worker processes; with --executor ray, the local cluster's CPUs and the runs prepared at a time [the config's].",
)
@click.option(
    "--executor",
    type=click.Choice([str(k) for k in ExecutorKind]),
    help="Run the jobs in worker processes (local) or as Ray tasks (ray) [the config's, local].",
)
@click.option(
    "--ray-address",
    help="With --executor ray: the cluster to join (auto or HOST:PORT) [a new local one].",
)
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
    """
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
