"""Every setting of a fine-tuning run, in one dataclass: the single source of truth.

Each field of :class:`TrainConfig` is declared with :func:`setting`: its default, its help
text, its allowed values and the commands that offer it. From those declarations come
the ``graphblocks-train`` flags (:mod:`trainers.cli`), the TOML/YAML loader
(:func:`resolve_config`) and the settings table of ``docs/trainers.md``
(:mod:`trainers.settings_table`, checked by a test).

Precedence: defaults < ``--config FILE`` (TOML or YAML) < command-line flags. The run
folder keeps the resolved settings as ``config.toml``, enough to repeat the run with
``graphblocks-train run --config RUN/config.toml``. Defaults follow Barakat & Huang
(2023): Adam, batch 24, 10 epochs, a 70/20/10 split, images scaled to [0, 1].
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from trainers.rltune.presets import RLTUNE_PRESETS, RLTuneSettings, preset_default
from trainers.setting import (
    COMMANDS,
    EVERY_COMMAND,
    RLTUNE_ONLY,
    RUN_ONLY,
    SWEEPS,
    ConfigError,
    Setting,
    parse_floats,
    parse_input_size,
    parse_model_args,
    parse_shares,
    setting,
)

__all__ = ["COMMANDS", "EVERY_COMMAND", "ConfigError", "TrainConfig", "resolve_config", "settings"]

STRATEGIES = ("head", "full", "block", "quartile", "layers", "sweep", "rltune")


@dataclass
class TrainConfig:
    """All settings; the field names are the config-file keys and the flags' names."""

    # what and where
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
    # what trains
    strategy: str = setting(
        "sweep",
        "What trains: head (BL1), full (BL2), block K, quartile Q, the named layers, every block (sweep), or RL-Tune and its uniform baseline.",
        choices=STRATEGIES,
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
    # data
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
    # model
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
    bn: str = setting(
        "train",
        "The tuned layers' BatchNorm: batch statistics (train), or every BatchNorm on its running statistics (frozen).",
        choices=("train", "frozen"),
    )
    # optimisation
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
        None, "Stop after N epochs without a better validation accuracy.", shown_default="off"
    )
    seed: int = setting(
        0,
        "Seed of the split, the sampling and every job (each job's own seed is derived from it and the job's name).",
    )
    block_seeds: str = setting(
        "own",
        "Block jobs' seeds: each its own (derived from its name), or one shared by all blocks "
        "(the same head initialisation and batch order: blocks compared on common random numbers).",
        choices=("own", "shared"),
    )
    deterministic: bool = setting(
        False, "torch.use_deterministic_algorithms(True, warn_only=True).", syntax="flag"
    )
    device: str = setting(
        "auto", "auto: CUDA, then MPS, then the CPU.", choices=("auto", "cpu", "cuda", "mps")
    )
    amp: bool = setting(True, "bfloat16 autocast on CUDA (no loss scaling needed).", syntax="flag")
    # speed
    cache: str = setting(
        "auto",
        "Activation cache before the tuned block: in memory, else on disk, within the budgets (auto), or only one of them, or off.",
        choices=("auto", "memory", "disk", "off"),
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
    # where jobs run (docs/scaling.md)
    executor: str = setting(
        "local",
        "Where jobs run: one after another in this process (local), or each as a Ray task "
        "(ray; pip install 'graphblocks[ray]').",
        choices=("local", "ray"),
    )
    ray_address: str | None = setting(
        None,
        "The Ray cluster to join: auto (the one started on this machine with `ray start "
        "--head`) or HOST:PORT.",
        shown_default="a new local cluster",
        metavar="ADDRESS",
    )
    workers: int | None = setting(
        None, "CPUs of the new local Ray cluster.", shown_default="all cores"
    )
    cpus_per_task: int = setting(
        1,
        "CPUs (torch threads) each Ray task asks for; it asks for one GPU too when the cluster has GPUs.",
    )
    # how a sweep finds B_opt (docs/selection.md)
    select: str = setting(
        "full",
        "How a sweep finds B_opt: every block for --epochs (full); successive halving over "
        "the blocks (halving); or rank the blocks by relative gradient norm and train only the "
        "top one (gradnorm); or Ray Tune's asynchronous halving (asha, with --executor ray). "
        "BL1 and BL2 run unless --no-baselines.",
        choices=("full", "halving", "gradnorm", "asha"),
        commands=SWEEPS,
    )
    baselines: bool = setting(
        True,
        "A sweep's BL1 (head) and BL2 (full) after its blocks.",
        syntax="flag",
        commands=SWEEPS,
    )
    eta: int = setting(
        3,
        "Successive halving: each rung keeps the best 1/ETA blocks (at least one).",
        commands=SWEEPS,
    )
    min_epochs: int = setting(
        1,
        "Successive halving: the first rung's epochs; rung k trains to MIN·ETA^k epochs, the "
        "last one block to --epochs.",
        commands=SWEEPS,
    )
    gradnorm_batches: int | None = setting(
        None,
        "Gradient-norm ranking: the training batches whose summed gradient scores the blocks.",
        commands=SWEEPS,
        shown_default="all",
    )
    # RL-Tune (epochs above are the epochs per episode); None: the preset's value
    preset: str = setting(
        "practical",
        "RL-Tune's defaults: practical (rates relative to --lr, the first policy acts at --lr, "
        "reward on the next batch) or paper (Mahmud et al. 2022 as stated). See docs/rltune.md.",
        choices=tuple(RLTUNE_PRESETS),
        commands=RLTUNE_ONLY,
    )
    granularity: str = setting(
        "layer",
        "One learning rate per weighted layer, or per block.",
        choices=("layer", "block"),
        commands=RLTUNE_ONLY,
    )
    episodes: int = setting(5, "Episodes of episodic moving-average control.", commands=RLTUNE_ONLY)
    lr_grid: str | None = setting(
        None,
        "relative: the agent picks a multiple of --lr from --lr-multipliers; "
        "linear: one of --lr-steps rates from --lr-min to --lr-max.",
        choices=("relative", "linear"),
        commands=RLTUNE_ONLY,
        shown_default=preset_default("lr_grid"),
    )
    lr_multipliers: list[float] | None = setting(
        None,
        "The relative grid's multiples of --lr (include 1 for the base rate).",
        parse=parse_floats,
        metavar="M,M,...",
        commands=RLTUNE_ONLY,
        shown_default=preset_default("lr_multipliers"),
    )
    lr_steps: int = setting(20, "The linear grid's number of rates.", commands=RLTUNE_ONLY)
    lr_min: float = setting(0.0, "The linear grid's smallest rate, included.", commands=RLTUNE_ONLY)
    lr_max: float = setting(0.01, "The linear grid's largest rate, included.", commands=RLTUNE_ONLY)
    base_prob: float | None = setting(
        None,
        "The first policy's probability of the base rate (1×) per unit; 0: the agent's "
        "random initial policy.",
        commands=RLTUNE_ONLY,
        shown_default=preset_default("base_prob"),
    )
    warmup_epochs: int | None = setting(
        None,
        "First epochs in which the agent takes its most likely action and does not learn "
        "(with base-prob > 0: plain fine-tuning at --lr).",
        commands=RLTUNE_ONLY,
        shown_default=preset_default("warmup_epochs"),
    )
    ema: float | None = setting(
        None,
        "After each episode: source ← (1 − EMA)·source + EMA·target for the parameters, "
        "BatchNorm statistics recomputed; 1: the target carries on (weights, Adam moments, data).",
        commands=RLTUNE_ONLY,
        shown_default=preset_default("ema"),
    )
    reward: str | None = setting(
        None,
        "The reward of a step: accuracy of the updated model on the batch it trained on, in "
        "eval or train mode, or on the next batch (next: from that batch's training forward, free).",
        choices=("eval", "train", "next"),
        commands=RLTUNE_ONLY,
        shown_default=preset_default("reward"),
    )
    agent_lr: float | None = setting(
        None,
        "Adam learning rate of the agent (PPO).",
        commands=RLTUNE_ONLY,
        shown_default=preset_default("agent_lr"),
    )
    agent_gamma: float | None = setting(
        None,
        "Discount of the agent's return (how far ahead a rate's effect on the reward counts).",
        commands=RLTUNE_ONLY,
        shown_default=preset_default("agent_gamma"),
    )
    ppo_steps: int | None = setting(
        None,
        "Interactions a PPO update waits for (checked at each epoch end; 1: every epoch).",
        commands=RLTUNE_ONLY,
        shown_default=preset_default("ppo_steps"),
    )

    def __post_init__(self) -> None:
        for spec in settings():
            value = getattr(self, spec.name)
            if spec.info.choices is not None and value not in (*spec.info.choices, None):
                raise ConfigError(
                    f"bad {spec.name} {value!r}", f"choose from {', '.join(spec.info.choices)}"
                )
        if len(self.split) != 3 or abs(sum(self.split) - 1) > 1e-6 or min(self.split) < 0:
            raise ConfigError(
                f"bad split {self.split}", "give three shares that sum to 1, e.g. 0.7,0.2,0.1"
            )
        if not 0 < self.sample_rate <= 1:
            raise ConfigError(f"bad sample rate {self.sample_rate}", "give a share in (0, 1]")
        self._check_rltune()
        self._check_scaling()
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(
                "epochs, batch size and learning rate must be positive", "fix the setting"
            )

    def _check_rltune(self) -> None:
        rl = self.rltune_settings()
        if (
            not 0 < rl.ema <= 1
            or self.episodes < 1
            or rl.lr_steps < 2
            or not 0 <= rl.lr_min < rl.lr_max
            or not 0 <= rl.base_prob < 1
            or rl.warmup_epochs < 0
            or rl.ppo_steps < 1
            or rl.agent_lr <= 0
            or not 0 <= rl.agent_gamma <= 1
            or (
                rl.lr_grid == "relative"
                and (len(rl.lr_multipliers) < 2 or min(rl.lr_multipliers) < 0)
            )
        ):
            raise ConfigError(
                "bad RL-Tune settings",
                "episodes ≥ 1, lr-steps ≥ 2, 0 ≤ lr-min < lr-max, 0 < ema ≤ 1, 0 ≤ base-prob < 1, "
                "warmup-epochs ≥ 0, ppo-steps ≥ 1, agent-lr > 0, two or more multipliers ≥ 0",
            )

    def _check_scaling(self) -> None:
        if self.eta < 2 or self.min_epochs < 1 or self.cpus_per_task < 1:
            raise ConfigError(
                "bad selection or executor settings", "eta ≥ 2, min-epochs ≥ 1, cpus-per-task ≥ 1"
            )
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"bad workers {self.workers}", "give one or more")
        if self.select == "asha" and self.executor != "ray":
            raise ConfigError(
                "--select asha runs on Ray Tune", "add --executor ray, or use --select halving"
            )
        if self.select != "full" and self.strategy != "sweep":
            raise ConfigError(
                f"--select {self.select} chooses among the blocks of a sweep",
                "use graphblocks-train sweep, or --strategy sweep",
            )

    def rltune_settings(self) -> RLTuneSettings:
        """RL-Tune's settings, with the preset's value for each one left at None."""
        preset = RLTUNE_PRESETS[self.preset]
        values = {
            f.name: preset[f.name] if getattr(self, f.name) is None else getattr(self, f.name)
            for f in dataclasses.fields(RLTuneSettings)
        }
        values["lr_multipliers"] = tuple(values["lr_multipliers"])
        return RLTuneSettings(**values)

    def to_toml(self) -> str:
        """The settings as TOML (None values left out: they are the defaults)."""
        lines = [
            "# graphblocks-train settings; repeat with: graphblocks-train run --config THIS_FILE"
        ]
        for key, value in dataclasses.asdict(self).items():
            if value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)


def settings() -> Iterator[Setting]:
    """Every declared setting of :class:`TrainConfig`, in declaration order."""
    for f in dataclasses.fields(TrainConfig):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        yield Setting(f.name, default, f.metadata["setting"])


FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig))


def default_of(name: str) -> Any:
    """The default value of setting ``name``."""
    return next(s.default for s in settings() if s.name == name)


def _toml_value(value: Any) -> str:
    """A TOML value: JSON spells strings, numbers, booleans and arrays the same way;
    tables are written inline."""
    if isinstance(value, Mapping):
        return (
            "{"
            + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


def _parse_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read config {str(path)!r} ({exc.strerror})", "check the path"
        ) from exc
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text) or {}
        return tomllib.loads(text)
    except Exception as exc:
        raise ConfigError(f"cannot parse {path.name}: {exc}", "fix the file's syntax") from exc


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Settings from a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file."""
    path = Path(path)
    data = _parse_file(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name} is not a table of settings", "write key = value lines")
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise ConfigError(
            f"unknown settings {unknown} in {path.name}", f"known: {', '.join(sorted(FIELDS))}"
        )
    return data


def resolve_config(file: str | Path | None, overrides: Mapping[str, Any]) -> TrainConfig:
    """Defaults, then the file's settings, then ``overrides`` (the flags given)."""
    values: dict[str, Any] = dict(read_config_file(file)) if file else {}
    values.update({k: v for k, v in overrides.items() if k in FIELDS})
    try:
        return TrainConfig(**values)
    except TypeError as exc:
        raise ConfigError(f"bad settings: {exc}", "check the keys and their types") from exc
