"""What runs and what came out: :class:`Job` and :class:`JobResult`.

A job's name is its identity in a run folder (``results/<name>.json``,
``metrics/<name>.jsonl``, ``checkpoints/<name>.safetensors``, the ``name`` of a result);
:class:`~trainers.jobs.run_folder.RunFolder` turns it into those paths. Names are made by
:func:`job_name` (which :attr:`Job.name` calls) and read by :func:`parse_job_name`:

============  =======================================================
``head``      BL1: the new head
``full``      BL2: everything
``block:K``   block K and the head
``quartile:Q``  every block of quartile Q and the head
``layers``    the named layers and the head
``rltune``    RL-Tune: everything, at the agent's per-unit rates
``uniform``   RL-Tune's baseline: everything at one rate
``lp-ft``     linear probe, then everything (:mod:`trainers.training.recipes`)
``layer-decay``  everything, rates decaying toward the input
``l2-sp``     everything, pulled toward the source weights
``auto-rgn``  everything, at rates from relative gradient norms
============  =======================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from trainers.settings import BlockSeeds, ConfigError, TrainConfig
from trainers.settings.kinds import JobKind, kinds_where

#: job kinds whose name carries an index (the block, the quartile)
INDEXED = kinds_where(indexed=True)
JOB_KINDS = tuple(JobKind)
#: jobs seeded like another job (see :attr:`Job.seed_name`)
PAIRED_SEEDS = {JobKind.UNIFORM: JobKind.RLTUNE}


def job_name(kind: JobKind | str, index: int | None = None) -> str:
    """The name of the job of ``kind`` (with its block or quartile ``index``)."""
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    if (kind in INDEXED) != (index is not None):
        raise ValueError(f"a {kind} job {'needs' if kind in INDEXED else 'takes no'} index")
    return f"{kind}:{index}" if index is not None else str(kind)


def parse_job_name(name: str) -> tuple[JobKind, int | None]:
    """``(kind, index)`` of a job name: ``"block:3"`` → ``(JobKind.BLOCK, 3)``."""
    kind, sep, index = name.partition(":")
    if kind not in JOB_KINDS or (kind in INDEXED) != bool(sep) or (sep and not index.isdigit()):
        raise ConfigError(f"bad job name {name!r}", f"job names are {', '.join(JOB_KINDS)}")
    return JobKind(kind), int(index) if sep else None


def file_stem(name: str) -> str:
    """A job name as a file name (no ``:``): ``block:3`` → ``block-3``."""
    return name.replace(":", "-")


@dataclass(frozen=True)
class Job:
    """What runs: a kind, its block, quartile or layers, and its settings (a job's
    budget is ``settings.epochs``)."""

    kind: JobKind
    settings: TrainConfig = dataclasses.field(compare=False, repr=False)
    block: int | None = None
    quartile: int | None = None
    layers: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return job_name(self.kind, self.block if self.kind is JobKind.BLOCK else self.quartile)

    @property
    def seed_name(self) -> str:
        """The name the job's seed derives from: its own, except that RL-Tune's uniform
        baseline shares RL-Tune's (same head initialisation, same batch order), so the two
        differ only by the agent. With ``block_seeds = "shared"`` every block job shares
        one seed (the same head initialisation and batch order), so blocks are compared
        on common random numbers."""
        if self.kind is JobKind.BLOCK and self.settings.block_seeds is BlockSeeds.SHARED:
            return str(JobKind.BLOCK)
        return str(PAIRED_SEEDS.get(self.kind, self.name))

    @property
    def file_stem(self) -> str:
        """The name as a file name (no ``:``)."""
        return file_stem(self.name)


@dataclass(frozen=True, kw_only=True)
class RLTuneOutcome:
    """What an RL-Tune job reports besides every job's fields (None: a file written
    before that field existed)."""

    #: the last episode's target model on validation
    last_target_val_acc: float | None = None
    #: the units that got a learning rate each, and how they were cut
    units: tuple[str, ...] | None = None
    granularity: str | None = None
    preset: str | None = None
    #: the model it selected (``target`` or ``source``, after which episode)
    selected: str | None = None
    selected_episode: int | None = None


class PhaseName(StrEnum):
    """What a stretch of a job's epochs trains (:class:`TrainedPhase`)."""

    TRAIN = "train"  #: the job's trainable parameters, as its kind says
    PROBE = "probe"  #: LP-FT's linear probe: the new head on frozen features
    FINE_TUNE = "fine-tune"  #: LP-FT's second phase: every layer


@dataclass(frozen=True)
class TrainedPhase:
    """A stretch of a job's epochs with one optimizer: what trained, for how many epochs,
    and the highest and lowest learning rate of its parameter groups when it began."""

    name: PhaseName
    epochs: int
    trainable_params: int
    lr: float
    lr_min: float

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "name": str(self.name)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainedPhase:
        return cls(**{**data, "name": PhaseName(data["name"])})


#: a job row's keys in the order results files write them
_ORDER = (
    "name",
    "val_acc",
    "test_acc",
    "val_loss",
    "best_epoch",
    "last_target_val_acc",
    "trainable_params",
    "phases",
    "seconds",
    "train_seconds",
    "steps",
    "cache",
    "units",
    "granularity",
    "preset",
    "selected",
    "selected_episode",
    "val_hits",
    "test_hits",
)
_RLTUNE_FIELDS = frozenset(f.name for f in dataclasses.fields(RLTuneOutcome))


@dataclass(frozen=True, kw_only=True)
class JobResult:
    """What one job gave: accuracies of the model it selected, its cost, how it ran.

    ``val_acc`` and ``test_acc`` are the selected model's (the best epoch's for every
    strategy but RL-Tune, whose model is its best source or target); ``test_acc`` is NaN
    without a test split. ``best_epoch`` counts RL-Tune's epochs over all episodes (0:
    the start). ``rltune`` is RL-Tune's own outcome (None for other jobs); in JSON its
    fields sit beside the others, as they always have."""

    name: str
    val_acc: float
    test_acc: float
    #: the selected model's validation loss (None: written before it was recorded, or RL-Tune)
    val_loss: float | None = None
    #: which validation images the selected model classified right, "0"/"1" in the
    #: split's order (None: not recorded); the bootstrap of B_opt's confidence reads them
    val_hits: str | None = None
    #: which test images it classified right (None: not recorded, or no test split yet);
    #: a study's confidence intervals over test images read them
    test_hits: str | None = None
    best_epoch: int | None = None
    trainable_params: int
    seconds: float
    train_seconds: float
    steps: int
    cache: tuple[str, ...] = ()
    #: the stretches of its epochs with one optimizer each, in order (empty: RL-Tune,
    #: whose agent sets the rates, or written before phases were recorded)
    phases: tuple[TrainedPhase, ...] = ()
    rltune: RLTuneOutcome | None = None

    @property
    def kind(self) -> JobKind:
        return parse_job_name(self.name)[0]

    @property
    def block(self) -> int | None:
        """The block index of a ``block`` job, else None."""
        kind, index = parse_job_name(self.name)
        return index if kind is JobKind.BLOCK else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (``results/<job>.json``, and a row of ``results.json``)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data.update(dataclasses.asdict(data.pop("rltune")) if self.rltune else {})
        data["phases"] = [phase.to_dict() for phase in self.phases] or None
        out = {key: data[key] for key in _ORDER if data.get(key) is not None}
        for key in ("cache", "units"):
            if key in out:
                out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobResult:
        """From a JSON object checked by the results schema."""
        values = dict(data)
        values["cache"] = tuple(values.get("cache", ()))
        values["phases"] = tuple(TrainedPhase.from_dict(p) for p in values.get("phases", ()))
        rl = {k: values.pop(k) for k in _RLTUNE_FIELDS & set(values)}
        if rl:
            if rl.get("units") is not None:
                rl["units"] = tuple(rl["units"])
            values["rltune"] = RLTuneOutcome(**rl)
        return cls(**values)
