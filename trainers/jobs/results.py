"""``results.json``: a run's typed results, its one JSON serializer, and B_opt.

The format is documented field by field in ``trainers/jobs/schema/results-v1.schema.json``;
every document is validated against it when written and when read. Files written
before ``schema_version`` existed have the same fields and are read as version 1.

Blocks are ranked here and nowhere else (:func:`ranked`): the higher score first, then
the lower validation loss when one is given, the earlier block only on an exact tie.
B_opt of a full sweep is the first block so ranked by validation accuracy and loss
(:func:`best_block`), reported with its test accuracy; the selectors of
:mod:`trainers.selection` promote and choose blocks by the same :func:`ranked`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from graphblocks import GraphblocksError, Partition, write_atomic
from trainers.jobs.confidence import Confidence, choice_confidence
from trainers.jobs.job import JobKind, JobResult, job_name
from trainers.jobs.run_folder import RunFolder
from trainers.settings.kinds import kinds_where

#: the jobs a sweep compares its blocks with: BL1, BL2, and the practitioner's baselines
BASELINE_KINDS = kinds_where(baseline=True)
SCHEMA_VERSION = 1
SCHEMA_FILE = "results-v1.schema.json"


class ResultsError(GraphblocksError):
    """A results file that cannot be read."""


@dataclass(frozen=True)
class BlockChoice:
    """B_opt: a block and the accuracies it was chosen by and is reported with."""

    index: int
    val_acc: float
    test_acc: float
    #: how firmly it was chosen at the last decision (None: one candidate, or no hits)
    confidence: Confidence | None = None


@dataclass(frozen=True)
class Stats:
    """Mean, population standard deviation, minimum and maximum (None: no values)."""

    mean: float | None
    std: float | None
    min: float | None
    max: float | None

    @classmethod
    def of(cls, values: Iterable[float]) -> Stats:
        """Of ``values`` without their NaNs (an empty split's accuracy)."""
        clean = [v for v in values if v == v]
        if not clean:
            return cls(None, None, None, None)
        return cls(statistics.fmean(clean), statistics.pstdev(clean), min(clean), max(clean))


@dataclass(frozen=True)
class QuartileStats:
    """The block results of one quartile."""

    blocks: tuple[int, ...]
    test_acc: Stats
    val_acc: Stats


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep adds to its job results."""

    best_block: BlockChoice | None
    quartiles: dict[str, QuartileStats]
    baselines: dict[str, JobResult]


@dataclass(frozen=True)
class Score:
    """A model on a split: its accuracy and mean cross-entropy (NaN: no rows, or a loss
    not recorded). Scores order models: the higher accuracy first, then the lower loss,
    an unknown one last; accuracy alone ties often on small validation splits."""

    accuracy: float
    loss: float = float("nan")
    #: which images it classified right (:func:`~trainers.jobs.confidence.hits_string`;
    #: empty: not recorded); not part of the order
    hits: str = field(default="", compare=False)

    def key(self) -> tuple[float, float]:
        """Sorts the better score first."""
        accuracy = -self.accuracy if self.accuracy == self.accuracy else math.inf
        return accuracy, self.loss if self.loss == self.loss else math.inf

    def beats(self, other: Score) -> bool:
        """Strictly better than ``other``."""
        return self.key() < other.key()


def ranked(
    blocks: Sequence[int], scores: Sequence[float], losses: Sequence[float | None] | None = None
) -> list[int]:
    """``blocks`` from the best to the worst by :class:`Score` (``scores`` are their
    accuracies, or any higher-is-better score), the earlier block on an exact tie."""
    nan = float("nan")
    given = losses if losses is not None else [nan] * len(blocks)
    keys = [
        Score(s, nan if loss is None else loss).key() for s, loss in zip(scores, given, strict=True)
    ]
    return [block for _, block in sorted(zip(keys, blocks, strict=True))]


def best_block(
    results: Iterable[JobResult], decision: Confidence | None = None
) -> BlockChoice | None:
    """B_opt among the ``block:K`` results: the first by :func:`ranked` validation
    accuracy; None without block results. Its confidence is ``decision`` when a selector
    made the last decision, else that of choosing it among the block results."""
    blocks = {r.block: r for r in results if r.block is not None}
    if not blocks:
        return None
    jobs = list(blocks.values())
    ranking = ranked(list(blocks), [r.val_acc for r in jobs], [r.val_loss for r in jobs])
    index = ranking[0]
    confidence = decision or choice_confidence(ranking, [blocks[b].val_hits or "" for b in ranking])
    return BlockChoice(index, blocks[index].val_acc, blocks[index].test_acc, confidence)


def summarize_sweep(
    partition: Partition, results: Sequence[JobResult], selection: Selection | None = None
) -> SweepSummary:
    """B_opt, per-quartile statistics and the baselines, from the results present (B_opt's
    confidence from ``selection``'s last decision when it made one)."""
    by_name = {r.name: r for r in results}
    quartiles = {}
    for q, indices in partition.quartiles.items():
        done = [by_name[n] for n in (job_name(JobKind.BLOCK, i) for i in indices) if n in by_name]
        if done:
            quartiles[q] = QuartileStats(
                tuple(r.block for r in done if r.block is not None),
                Stats.of(r.test_acc for r in done),
                Stats.of(r.val_acc for r in done),
            )
    baselines = {str(k): by_name[k] for k in BASELINE_KINDS if k in by_name}
    decision = selection.decision_confidence() if selection else None
    return SweepSummary(best_block(results, decision), quartiles, baselines)


@dataclass(frozen=True)
class Rung:
    """One rung of successive halving: its blocks trained to ``epochs``, each one's best
    validation accuracy of those epochs, and the blocks it promoted."""

    epochs: int
    blocks: tuple[int, ...]
    val_acc: tuple[float, ...]
    kept: tuple[int, ...]
    epochs_run: int
    #: the validation loss of the same epochs (empty: not recorded)
    val_loss: tuple[float, ...] = ()
    #: which validation images each block's best epoch classified right (empty: not recorded)
    val_hits: tuple[str, ...] = ()

    def confidence(self) -> Confidence | None:
        """The confidence of this rung's first block by :func:`ranked` over the others."""
        order = ranked(self.blocks, self.val_acc, self.val_loss or None)
        hits = dict(zip(self.blocks, self.val_hits, strict=True)) if self.val_hits else {}
        return choice_confidence(order, [hits.get(b, "") for b in order])


@dataclass(frozen=True, kw_only=True)
class Selection:
    """How a sweep found B_opt without training every block fully, and its cost in
    block epochs (``epochs_full_sweep``: what the full sweep trains) and seconds."""

    method: str
    epochs_run: float
    epochs_full_sweep: int
    seconds: float
    eta: int | None = None
    rungs: tuple[Rung, ...] = ()
    #: gradnorm: each block's relative gradient norm, by block index
    scores: tuple[float, ...] | None = None
    ranking_seconds: float | None = None

    def decision_confidence(self) -> Confidence | None:
        """The confidence of the last rung that chose among several blocks (None: none did)."""
        deciding = [rung for rung in self.rungs if len(rung.blocks) > 1]
        return deciding[-1].confidence() if deciding else None

    @property
    def share(self) -> float:
        """``epochs_run`` as a share of the full sweep's."""
        return self.epochs_run / self.epochs_full_sweep

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, ())}
        if self.rungs:
            data["rungs"] = [
                {
                    k: list(v) if isinstance(v, tuple) else v
                    for k, v in vars(r).items()
                    if not (k in _OPTIONAL_RUNG and not v)
                }
                for r in self.rungs
            ]
        if self.scores is not None:
            data["scores"] = list(self.scores)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Selection:
        values = dict(data)
        values["rungs"] = tuple(_rung(r) for r in values.get("rungs", ()))
        if values.get("scores") is not None:
            values["scores"] = tuple(values["scores"])
        return cls(**values)


#: rung fields that older files lack, left out when empty
_OPTIONAL_RUNG = frozenset({"val_loss", "val_hits"})


def _rung(data: Mapping[str, Any]) -> Rung:
    return Rung(
        data["epochs"],
        tuple(data["blocks"]),
        tuple(data["val_acc"]),
        tuple(data["kept"]),
        data["epochs_run"],
        tuple(data.get("val_loss", ())),
        tuple(data.get("val_hits", ())),
    )


@dataclass(frozen=True, kw_only=True)
class RunResults:
    """Everything ``results.json`` holds (see the schema for each field)."""

    model: str
    strategy: str
    num_blocks: int
    classes: tuple[str, ...]
    split_sizes: dict[str, int]
    jobs: tuple[JobResult, ...]
    skipped_images: tuple[str, ...] = ()
    cache_note: str = ""
    weights_note: str = ""
    sweep: SweepSummary | None = None
    selection: Selection | None = None
    schema_version: int = SCHEMA_VERSION

    def job(self, name: str) -> JobResult | None:
        """The result of the job called ``name``, if it finished."""
        return next((r for r in self.jobs if r.name == name), None)

    @property
    def best_block(self) -> BlockChoice | None:
        return self.sweep.best_block if self.sweep else None

    # ---- serialization -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON document as plain data, keys in the documented order."""
        data: dict[str, Any] = {
            "schema_version": self.schema_version,
            "model": self.model,
            "strategy": self.strategy,
            "num_blocks": self.num_blocks,
            "classes": list(self.classes),
            "split_sizes": dict(self.split_sizes),
            "strategies": [r.to_dict() for r in self.jobs],
            "skipped_images": list(self.skipped_images),
        }
        if self.cache_note:
            data["cache_note"] = self.cache_note
        if self.weights_note:
            data["weights_note"] = self.weights_note
        if self.sweep is not None:
            data.update(_sweep_dict(self.sweep))
        if self.selection is not None:
            data["selection"] = self.selection.to_dict()
        return data

    def to_json(self) -> str:
        """Serialize, validating against the schema first; ends with a newline."""
        data = self.to_dict()
        validate_results(data)
        return json.dumps(data, indent=1, allow_nan=True) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunResults:
        """Build from a parsed document (an older one without ``schema_version`` too),
        validating it first."""
        data = {"schema_version": SCHEMA_VERSION, **data}
        validate_results(data)
        jobs = tuple(JobResult.from_dict(r) for r in data["strategies"])
        return cls(
            model=data["model"],
            strategy=data["strategy"],
            num_blocks=data["num_blocks"],
            classes=tuple(data["classes"]),
            split_sizes=dict(data["split_sizes"]),
            jobs=jobs,
            skipped_images=tuple(data["skipped_images"]),
            cache_note=data.get("cache_note", ""),
            weights_note=data.get("weights_note", ""),
            sweep=_sweep_from(data) if "quartiles" in data else None,
            selection=Selection.from_dict(data["selection"]) if "selection" in data else None,
        )

    def save(self, path: str | Path) -> None:
        """Write atomically."""
        write_atomic(Path(path), self.to_json())


def _sweep_dict(sweep: SweepSummary) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if sweep.best_block is not None:
        b = sweep.best_block
        data["best_block"] = {"index": b.index, "val_acc": b.val_acc, "test_acc": b.test_acc}
        if b.confidence is not None:
            data["best_block"]["confidence"] = vars(b.confidence)
    data["quartiles"] = {
        q: {"blocks": list(s.blocks), "test_acc": vars(s.test_acc), "val_acc": vars(s.val_acc)}
        for q, s in sweep.quartiles.items()
    }
    data["baselines"] = {k: r.to_dict() for k, r in sweep.baselines.items()}
    return data


def _block_choice(data: Mapping[str, Any]) -> BlockChoice:
    confidence = data.get("confidence")
    values = {k: v for k, v in data.items() if k != "confidence"}
    return BlockChoice(**values, confidence=Confidence(**confidence) if confidence else None)


def _sweep_from(data: Mapping[str, Any]) -> SweepSummary:
    best = data.get("best_block")
    return SweepSummary(
        _block_choice(best) if best else None,
        {
            q: QuartileStats(tuple(s["blocks"]), Stats(**s["test_acc"]), Stats(**s["val_acc"]))
            for q, s in data["quartiles"].items()
        },
        {k: JobResult.from_dict(r) for k, r in data.get("baselines", {}).items()},
    )


@cache
def results_schema() -> dict[str, Any]:
    """The shipped JSON Schema of ``results.json``."""
    text = resources.files("trainers.jobs.schema").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _first_error(data: Any, schema: Mapping[str, Any]) -> str | None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    return f"at {where}: {error.message}"


def validate_results(data: Mapping[str, Any]) -> None:
    """Raise :class:`ResultsError` naming the first place ``data`` breaks the schema."""
    problem = _first_error(data, results_schema())
    if problem is not None:
        version = data.get("schema_version")
        hint = (
            f"this file has schema_version {version!r}; this graphblocks-train reads {SCHEMA_VERSION}"
            if version != SCHEMA_VERSION
            else "rerun the job, or the run with --resume"
        )
        raise ResultsError(f"invalid results {problem}", hint)


def validate_job(data: Mapping[str, Any]) -> None:
    """Raise :class:`ResultsError` when ``data`` is not one job's result."""
    full = results_schema()
    schema = {"$schema": full["$schema"], "$defs": full["$defs"], "$ref": "#/$defs/job"}
    problem = _first_error(data, schema)
    if problem is not None:
        raise ResultsError(f"invalid job result {problem}", "delete it to rerun that job")


def write_job_result(path: Path, result: JobResult) -> None:
    """``results/<job>.json``, validated and written atomically."""
    data = result.to_dict()
    validate_job(data)
    write_atomic(path, json.dumps(data, indent=1) + "\n")


def read_job_result(path: Path) -> JobResult:
    """A finished job's result file, validated."""
    data = _read_json(path, "give a run folder of graphblocks-train")
    validate_job(data)
    return JobResult.from_dict(data)


def finished_result(folder: RunFolder, job: str) -> JobResult | None:
    """The result of job ``job`` when it finished in ``folder`` before, read back rather
    than run again; None when it has no result yet."""
    saved = folder.job_result(job)
    return read_job_result(saved) if saved.exists() else None


def _read_json(path: Path, fix: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"no readable results in {str(path)!r}", fix) from exc


def load_results(run_dir: str | Path) -> RunResults:
    """``RUN_DIR/results.json``, validated, or a one-line error."""
    data = _read_json(RunFolder(Path(run_dir)).results, "give a run folder of graphblocks-train")
    if not isinstance(data, dict):
        raise ResultsError(f"{str(run_dir)!r} holds no results object", "rerun it")
    return RunResults.from_dict(data)


__all__ = [
    "BlockChoice",
    "QuartileStats",
    "ResultsError",
    "RunResults",
    "Rung",
    "Score",
    "Selection",
    "Stats",
    "SweepSummary",
    "best_block",
    "load_results",
    "ranked",
    "read_job_result",
    "summarize_sweep",
    "write_job_result",
]
