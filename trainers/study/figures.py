"""The study's figures (PNG): per-quartile box plots with both baselines, one panel per
target (the block-wise paper's Fig. 6-7), and RL-Tune − uniform by sampling rate."""

from __future__ import annotations

import statistics
from pathlib import Path

from trainers.report.plots import pyplot, save_png
from trainers.study.results import PairResults

GROUPS = ("BL1", "BL2", "Q1", "Q2", "Q3", "Q4")


def quartile_samples(pairs: list[PairResults]) -> dict[str, list[tuple[str, float]]]:
    """Per box, ``(model, test accuracy)`` points: the baselines one per model (mean over
    seeds), a quartile one per block of every model (mean over seeds), as in the paper."""
    samples: dict[str, list[tuple[str, float]]] = {g: [] for g in GROUPS}
    for pair in pairs:
        for group, job in (("BL1", "head"), ("BL2", "full")):
            if pair.test(job):
                samples[group].append((pair.model, statistics.fmean(pair.test(job))))
        for q in "1234":
            for index in pair.quartile_blocks(q):
                if pair.block_test(index):
                    samples[f"Q{q}"].append((pair.model, statistics.fmean(pair.block_test(index))))
    return samples


def plot_quartile_boxes(by_target: dict[str, list[PairResults]], path: Path) -> Path:
    """One panel per target: boxes BL1, BL2, Q1..Q4 over all models, points coloured by
    model."""
    plt = pyplot()
    targets = list(by_target)
    fig, axes = plt.subplots(1, len(targets), figsize=(4.6 * len(targets), 4.2), squeeze=False)
    models = sorted({p.model for pairs in by_target.values() for p in pairs})
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
    for ax, target in zip(axes[0], targets, strict=True):
        samples = quartile_samples(by_target[target])
        data = [[v for _, v in samples[g]] or [float("nan")] for g in GROUPS]
        ax.boxplot(
            data,
            tick_labels=list(GROUPS),
            widths=0.55,
            showfliers=False,
            medianprops={"color": "black"},
        )
        for x, group in enumerate(GROUPS, 1):
            for k, (model, value) in enumerate(samples[group]):
                jitter = ((k % 7) - 3) * 0.035
                ax.scatter(x + jitter, value, s=12, color=colours[model], alpha=0.8, zorder=3)
        ax.set_title(target)
        ax.set_ylabel("test accuracy")
        ax.grid(axis="y", alpha=0.3)
    handles = [plt.Line2D([], [], marker="o", ls="", color=colours[m], label=m) for m in models]
    fig.legend(handles=handles, loc="lower center", ncol=len(models), frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return save_png(fig, path)


def plot_rl_gains(gains: dict[float, list[float]], path: Path) -> Path:
    """RL-Tune − uniform test accuracy per sampling rate: every run as a point, the mean
    as a line."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    rates = sorted(gains)
    for x, rate in enumerate(rates):
        ax.scatter([x] * len(gains[rate]), gains[rate], s=10, alpha=0.5, color="tab:blue")
    means = [statistics.fmean(gains[r]) if gains[r] else float("nan") for r in rates]
    ax.plot(range(len(rates)), means, color="tab:red", marker="o", label="mean")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(len(rates)), [f"{r:.0%}" for r in rates])
    ax.set_xlabel("share of the training split")
    ax.set_ylabel("RL-Tune − uniform (test accuracy)")
    ax.legend(frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save_png(fig, path)
