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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from graphblocks import GraphblocksError


class ConfigError(GraphblocksError):
    """A setting or a config file that cannot be used."""


#: the commands of ``graphblocks-train`` that run something
COMMANDS = ("run", "sweep", "rltune")
EVERY_COMMAND = COMMANDS
RUN_ONLY = ("run",)
RLTUNE_ONLY = ("rltune",)
STRATEGIES = ("head", "full", "block", "quartile", "layers", "sweep", "rltune")


@dataclass(frozen=True)
class SettingInfo:
    """What a setting's declaration says besides its default (a field's metadata)."""

    help: str
    choices: tuple[str, ...] | None = None
    commands: tuple[str, ...] = EVERY_COMMAND
    #: the command-line syntax: "value" (one value), "multiple" (a repeatable flag) or
    #: "flag" (``--x/--no-x``)
    syntax: str = "value"
    #: turns what the command line gives (a string, or a tuple of them) into the value
    parse: Callable[[Any], Any] | None = None
    #: how the default is shown when not by its value
    shown_default: str | None = None
    metavar: str | None = None
    #: the flag's name when not ``--<name-with-dashes>``
    flag: str | None = None
    #: more flag names per command, e.g. ``{"rltune": ("--epochs-per-episode",)}``
    aliases: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


def _shares(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise ConfigError(f"bad --split {text!r}", "write three shares, e.g. 0.7,0.2,0.1") from None


def _input_size(text: str) -> list[int]:
    import graphblocks

    return list(graphblocks.parse_input_size(text))


def _model_args(pairs: tuple[str, ...]) -> dict[str, Any]:
    import graphblocks

    return graphblocks.parse_model_args(pairs)


def setting(default: Any = None, help: str = "", **info: Any) -> Any:
    """A :class:`TrainConfig` field: its default (a list or dict is copied per instance)
    and its :class:`SettingInfo`."""
    metadata = {"setting": SettingInfo(help, **info)}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


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
        parse=_model_args,
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
        parse=_shares,
        metavar="TRAIN,VAL,TEST",
    )
    sample_rate: float = setting(
        1.0, "Stratified share of the training split to keep (RL-Tune's low-data regimes)."
    )
    input_size: list[int] | None = setting(
        None,
        "Input size C,H,W.",
        parse=_input_size,
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
        "Weights file: .safetensors or a state dict, checked against the partition's parameter names.",
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
    # RL-Tune (epochs above are the epochs per episode)
    granularity: str = setting(
        "layer",
        "One learning rate per weighted layer, or per block.",
        choices=("layer", "block"),
        commands=RLTUNE_ONLY,
    )
    episodes: int = setting(5, "Episodes of episodic moving-average control.", commands=RLTUNE_ONLY)
    lr_steps: int = setting(20, "Learning rates the agent chooses from.", commands=RLTUNE_ONLY)
    lr_min: float = setting(0.0, "Smallest rate, included.", commands=RLTUNE_ONLY)
    lr_max: float = setting(0.01, "Largest rate, included.", commands=RLTUNE_ONLY)
    ema: float = setting(
        0.2, "After each episode: source ← (1 − EMA)·source + EMA·target.", commands=RLTUNE_ONLY
    )
    reward: str = setting(
        "eval",
        "Reward forward pass in eval or training mode.",
        choices=("eval", "train"),
        commands=RLTUNE_ONLY,
    )

    def __post_init__(self) -> None:
        for spec in settings():
            value = getattr(self, spec.name)
            if spec.info.choices is not None and value not in spec.info.choices:
                raise ConfigError(
                    f"bad {spec.name} {value!r}", f"choose from {', '.join(spec.info.choices)}"
                )
        if len(self.split) != 3 or abs(sum(self.split) - 1) > 1e-6 or min(self.split) < 0:
            raise ConfigError(
                f"bad split {self.split}", "give three shares that sum to 1, e.g. 0.7,0.2,0.1"
            )
        if not 0 < self.sample_rate <= 1:
            raise ConfigError(f"bad sample rate {self.sample_rate}", "give a share in (0, 1]")
        if (
            not 0 < self.ema <= 1
            or self.episodes < 1
            or self.lr_steps < 2
            or not 0 <= self.lr_min < self.lr_max
        ):
            raise ConfigError(
                "bad RL-Tune settings",
                "episodes ≥ 1, lr-steps ≥ 2, 0 ≤ lr-min < lr-max, 0 < ema ≤ 1",
            )
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(
                "epochs, batch size and learning rate must be positive", "fix the setting"
            )

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


@dataclass(frozen=True)
class Setting:
    """One declared setting: its field name, default and :class:`SettingInfo`."""

    name: str
    default: Any
    info: SettingInfo

    @property
    def flag(self) -> str:
        return self.info.flag or "--" + self.name.replace("_", "-")

    def shown_default(self) -> str:
        """The default as people read it: ``0.7,0.2,0.1``, ``on``, ``1e-3``."""
        if self.info.shown_default is not None:
            return self.info.shown_default
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        if isinstance(self.default, list):
            return ",".join(str(v) for v in self.default)
        if isinstance(self.default, float) and 0 < abs(self.default) < 0.01:
            return f"{self.default:g}".replace("e-0", "e-")
        return str(self.default)


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
