"""The sweep's figures, as PNG: accuracy per block with the baselines (the paper's
Fig. 2-5), and per-quartile box plots with the baselines (Fig. 6-7), for one run or
many (one box per model in each quartile's panel)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from graphblocks import atomic_target
from trainers.jobs.results import RunResults
from trainers.jobs.run_folder import RunFolder
from trainers.settings.kinds import JOB_KIND_TABLE, kinds_where


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: each baseline's colour and legend label
BASELINE_STYLE = {
    str(kind): (JOB_KIND_TABLE[kind].color, JOB_KIND_TABLE[kind].label)
    for kind in kinds_where(baseline=True)
}


def _block_results(results: RunResults) -> list[tuple[int, float, float]]:
    """``(block, val_acc, test_acc)`` of every block job, by block."""
    return sorted((r.block, r.val_acc, r.test_acc) for r in results.jobs if r.block is not None)


def _baseline_test(results: RunResults, name: str) -> float | None:
    """The test accuracy of baseline ``name`` (``head``, ``full``) when there is one."""
    base = results.sweep.baselines.get(name) if results.sweep else None
    return base.test_acc if base is not None and base.test_acc == base.test_acc else None


def save_png(fig: Any, path: Path) -> Path:
    """Write ``fig`` to ``path`` as PNG, atomically, and close it."""
    with atomic_target(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return path


def plot_blocks(results: RunResults, path: Path) -> Path:
    """Test (solid) and validation (dashed) accuracy per block, each baseline that ran
    (BL1, BL2, the extra ones) as a line, B_opt marked."""
    plt = pyplot()
    rows = _block_results(results)
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(rows) + 3), 4))
    if rows:
        blocks, val, test = zip(*rows, strict=True)
        ax.plot(blocks, test, "o-", color="#1f77b4", label="block + head (test)")
        ax.plot(blocks, val, "s--", color="#1f77b4", alpha=0.45, label="block + head (val)")
    for name, (color, label) in BASELINE_STYLE.items():
        base = _baseline_test(results, name)
        if base is not None:
            ax.axhline(base, color=color, linestyle=":", label=f"{label} (test)")
    best = results.best_block
    if best:
        ax.plot(
            [best.index],
            [best.test_acc],
            "*",
            color="#ff7f0e",
            markersize=16,
            label=f"B_opt = block {best.index}",
        )
    ax.set_xlabel("block")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{results.model}: block-wise fine-tuning")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return save_png(fig, path)


def plot_quartiles(runs: Sequence[RunResults], path: Path) -> Path:
    """One panel per quartile: a box of the blocks' test accuracies per model, with
    that model's baselines' test accuracies as markers (BL1 red, BL2 green, the extra
    baselines in :data:`BASELINE_STYLE`'s colours)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(3.2 * 4, 3.8), sharey=True)
    labels = [r.model for r in runs]
    for q, ax in zip(("1", "2", "3", "4"), axes, strict=True):
        boxes = []
        for results in runs:
            stats = results.sweep.quartiles.get(q) if results.sweep else None
            quartile = set(stats.blocks if stats else ())
            boxes.append([t for b, _, t in _block_results(results) if b in quartile and t == t])
        ax.boxplot([b or [float("nan")] for b in boxes], tick_labels=labels)
        for i, results in enumerate(runs, start=1):
            for name, (color, _) in BASELINE_STYLE.items():
                test = _baseline_test(results, name)
                if test is not None:
                    ax.plot([i], [test], marker="_", markersize=22, color=color)
        ax.set_title(f"Q{q}")
        ax.tick_params(axis="x", rotation=45, labelsize=7)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (markers: BL1 red, BL2 green)")
    return save_png(fig, path)


def plot_lr_heatmap(log_csv: Path, path: Path) -> Path:
    """RL-Tune's mean chosen learning rate, units down, epochs across."""
    import csv

    plt = pyplot()
    with log_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    units = [k for k in (rows[0] if rows else {}) if k not in ("episode", "epoch", "val_acc")]
    grid = [[float(r[u]) for r in rows] for u in units]
    fig, ax = plt.subplots(figsize=(max(5, 0.25 * len(rows) + 3), max(3, 0.18 * len(units) + 1.5)))
    image = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(len(units)), units, fontsize=6)
    ax.set_xticks(range(len(rows)), [str(i + 1) for i in range(len(rows))], fontsize=7)
    ax.set_xlabel("epoch (episodes one after another, separated by white lines)")
    for boundary in [
        i for i in range(1, len(rows)) if rows[i]["episode"] != rows[i - 1]["episode"]
    ]:
        ax.axvline(boundary - 0.5, color="white", lw=0.8)
    fig.colorbar(image, ax=ax, label="learning rate")
    ax.set_title("RL-Tune: learning rate per unit")
    return save_png(fig, path)


def render_plots(run_dir: Path, results: RunResults) -> list[Path]:
    """``blocks.png`` and ``quartiles.png`` for a sweep, ``rltune-lr.png`` (the chosen
    learning rate per unit and epoch) for RL-Tune."""
    folder, written = RunFolder(run_dir), []
    if any(r.block is not None for r in results.jobs):
        written += [
            plot_blocks(results, folder.figure("blocks")),
            plot_quartiles([results], folder.figure("quartiles")),
        ]
    if folder.rltune_rates.exists():
        written.append(plot_lr_heatmap(folder.rltune_rates, folder.figure("rltune-lr")))
    return written
