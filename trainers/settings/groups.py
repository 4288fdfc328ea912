"""The settings of what a run trains, on what, and how: one dataclass per concern.

:class:`~trainers.settings.config.TrainConfig` inherits every group, so the settings stay
flat (``config.epochs``, ``--epochs``, ``epochs = 10`` in a file) while each concern is
declared, documented and checked in one place. Defaults follow Barakat & Huang (2023):
Adam, batch 24, 10 epochs, a 70/20/10 split, images scaled to [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphblocks import DEFAULT_MAX_CROSSING
from trainers.settings.declare import (
    RUN_ONLY,
    ConfigError,
    parse_input_size,
    parse_model_args,
    parse_names,
    parse_shares,
    setting,
)
from trainers.settings.kinds import BlockSeeds, BNMode, CacheMode, EvalBN, Strategy


@dataclass
class SourceOptions:
    """What is fine-tuned, on which images, into which run folder."""

    model: str = setting(
        "",
        "timm name, torchvision:NAME or module:factory.",
        shown_default="the partition's",
        metavar="NAME",
    )
    model_args: dict[str, Any] = setting(
        {},
        "Keyword arguments of the model factory (img_size=64 for a ViT at 64 px), recorded in the partition; with --partition they must match the partition's.",
        syntax="multiple",
        parse=parse_model_args,
        flag="--model-arg",
        metavar="KEY=VALUE",
        shown_default="none",
    )
    data: str = setting(
        "",
        "An ImageFolder, a folder with train/ val/ [test/], or a CSV of path,label.",
        shown_default="required",
        metavar="DIR|CSV",
    )
    out: str = setting("", "The run folder.", shown_default="required", metavar="RUN_DIR")
    partition: str | None = setting(
        None, "Partition JSON.", shown_default="computed from --model", metavar="FILE"
    )
    max_crossing: int | None = setting(
        None,
        "The partition: cut only where at most K tensors cross (graphblocks inspect "
        "--max-crossing); with --partition it must match the partition's.",
        shown_default=f"graphblocks' ({DEFAULT_MAX_CROSSING}), or the partition's",
        metavar="K",
    )
    max_blocks: int | None = setting(
        None,
        "The partition: merge blocks down to at most N; with --partition it must match.",
        shown_default="no limit, or the partition's",
        metavar="N",
    )
    delimiters: list[str] | None = setting(
        None,
        "The partition: the delimiter classes blocks end at, comma-separated (pool, norm, "
        "act, merge); with --partition they must match the partition's.",
        parse=parse_names,
        shown_default="all, or the partition's",
        metavar="NAMES",
    )

    def partition_settings(self) -> dict[str, Any]:
        """The analysis settings this run asks for (those given, with the model's
        arguments): what a fresh partition is made with, and what a saved one must match."""
        given = {
            "model_args": dict(self.model_args) or None,
            "max_crossing": self.max_crossing,
            "max_blocks": self.max_blocks,
            "delimiters": None if self.delimiters is None else parse_names(self.delimiters),
        }
        return {key: value for key, value in given.items() if value is not None}


def partition_mismatch(
    recorded: Mapping[str, Any], wanted: Mapping[str, Any]
) -> tuple[str, Any, Any] | None:
    """The first analysis setting in ``wanted`` whose value differs from the one a saved
    partition ``recorded`` (its ``settings``): ``(name, recorded value, wanted value)``;
    None when all agree. Delimiters compare as sets, model arguments as dicts."""
    for name, value in wanted.items():
        made = recorded.get(name, {} if name == "model_args" else None)
        same = set(made or ()) == set(value) if name == "delimiters" else made == value
        if not same:
            return name, made, value
    return None


@dataclass
class StrategyOptions:
    """Which parameters train: the strategy and its block, quartile or layers."""

    strategy: Strategy = setting(
        Strategy.SWEEP,
        "What trains: head (BL1), full (BL2), block K, quartile Q, the named layers, every block (sweep), RL-Tune and its uniform baseline, or a practitioner's baseline: lp-ft, layer-decay, l2-sp, auto-rgn (docs/trainers.md).",
        choices=Strategy,
        commands=RUN_ONLY,
    )
    block: int | None = setting(
        None, "The block of --strategy block.", commands=RUN_ONLY, shown_default="none"
    )
    quartile: int | None = setting(
        None, "The quartile of --strategy quartile.", commands=RUN_ONLY, shown_default="none"
    )
    names: list[str] = setting(
        [],
        "Layer names of --strategy layers, as `graphblocks inspect --json` lists them.",
        syntax="multiple",
        parse=list,
        commands=RUN_ONLY,
        shown_default="none",
    )


@dataclass
class DataOptions:
    """How the images are split, sampled, sized and augmented."""

    split: list[float] = setting(
        [0.7, 0.2, 0.1],
        "Train, validation and test shares, seeded and stratified per class; every class keeps one training image. Saved as split.json and reused by every later run in the folder; a folder with train/ and val/ keeps its own split.",
        parse=parse_shares,
        metavar="TRAIN,VAL,TEST",
    )
    sample_rate: float = setting(
        1.0, "Stratified share of the training split to keep (RL-Tune's low-data regimes)."
    )
    input_size: list[int] | None = setting(
        None,
        "Input size C,H,W.",
        parse=parse_input_size,
        metavar="C,H,W",
        shown_default="the partition's",
    )
    preprocess: str = setting(
        "unit",
        "unit: resize and scale to [0, 1] (the paper's); timm: then the model's mean and std.",
        choices=("unit", "timm"),
    )
    augment: bool = setting(
        False,
        "Random horizontal flips and shifts of up to 1/8 (reflect padding); turns the activation cache off.",
        syntax="flag",
    )
    strict: bool = setting(
        False,
        "Fail on an unreadable image instead of skipping it (skipped images are listed in results.json).",
        syntax="flag",
    )

    def check_data(self) -> None:
        if len(self.split) != 3 or abs(sum(self.split) - 1) > 1e-6 or min(self.split) < 0:
            raise ConfigError(
                f"bad split {self.split}", "give three shares that sum to 1, e.g. 0.7,0.2,0.1"
            )
        if not 0 < self.sample_rate <= 1:
            raise ConfigError(f"bad sample rate {self.sample_rate}", "give a share in (0, 1]")


@dataclass
class ModelOptions:
    """The source weights and the new head."""

    pretrained: bool = setting(
        True,
        "timm's / torchvision's pretrained weights (needs the hub); Python factories have none.",
        syntax="flag",
    )
    weights: str | None = setting(
        None,
        "Weights file (.safetensors, .pth, .pt, .bin): the partition's names load as they are; a checkpoint of another implementation is ported by graph structure.",
        shown_default="none",
        metavar="FILE",
    )
    head: str = setting(
        "paper",
        "paper: flatten, Linear 512, ReLU, Dropout 0.5, Linear; linear: flatten, Linear. The source classifier is removed.",
        choices=("paper", "linear"),
    )
    head_hidden: int = setting(512, "Hidden width of the paper head.")
    head_dropout: float = setting(0.5, "Dropout of the paper head.")
    bn: BNMode = setting(
        BNMode.TRAIN,
        "The tuned layers' BatchNorm: batch statistics (train), or every BatchNorm on its running statistics (frozen).",
        choices=BNMode,
    )
    eval_bn: EvalBN = setting(
        EvalBN.RECOMPUTE,
        "Statistics of the tuned layers' BatchNorm when a model is evaluated: recomputed "
        "exactly over the training images first (recompute, PreciseBN), or the running "
        "averages training left (running), which lag fast-moving weights (docs/trainers.md).",
        choices=EvalBN,
    )


@dataclass
class OptimizationOptions:
    """The optimizer, its schedule, seeds and the device."""

    epochs: int = setting(
        10, "Epochs per job (RL-Tune: per episode).", aliases={"rltune": ("--epochs-per-episode",)}
    )
    batch_size: int = setting(24, "Batch size.")
    lr: float = setting(1e-3, "Adam learning rate.")
    weight_decay: float = setting(0.0, "Adam weight decay.")
    schedule: str = setting(
        "constant",
        "Learning-rate schedule: constant, or cosine over all steps.",
        choices=("constant", "cosine"),
    )
    patience: int | None = setting(
        None,
        "Stop after N epochs without a better validation score (accuracy, then loss).",
        shown_default="off",
    )
    seed: int = setting(
        0,
        "Seed of the split, the sampling and every job (each job's own seed is derived from it and the job's name).",
    )
    block_seeds: BlockSeeds = setting(
        BlockSeeds.SHARED,
        "Block jobs' seeds: one shared by all blocks (the same head initialisation and batch "
        "order: blocks compared on common random numbers, docs/selection.md), or each its own "
        "(derived from its name; the results of sweeps before issue 25).",
        choices=BlockSeeds,
    )
    deterministic: bool = setting(
        False, "torch.use_deterministic_algorithms(True, warn_only=True).", syntax="flag"
    )
    device: str = setting(
        "auto", "auto: CUDA, then MPS, then the CPU.", choices=("auto", "cpu", "cuda", "mps")
    )
    amp: bool = setting(True, "bfloat16 autocast on CUDA (no loss scaling needed).", syntax="flag")

    def check_optimization(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(
                "epochs, batch size and learning rate must be positive", "fix the setting"
            )


@dataclass
class SpeedOptions:
    """The activation cache, and continuing a run folder."""

    cache: CacheMode = setting(
        CacheMode.AUTO,
        "Activation cache before the tuned block: in memory, else on disk, within the budgets (auto), or only one of them, or off.",
        choices=CacheMode,
    )
    cache_dtype: str = setting(
        "float16", "Precision of cached activations.", choices=("float16", "float32")
    )
    cache_memory_gb: float = setting(4.0, "Memory budget of the activation cache (GB).")
    cache_disk_gb: float = setting(
        20.0, "Disk budget of the activation cache (GB, in RUN_DIR/cache/)."
    )
    resume: bool = setting(
        False, "Continue a run folder: finished jobs are read back, not rerun.", syntax="flag"
    )
