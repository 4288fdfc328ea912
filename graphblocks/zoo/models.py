"""The model zoo: which models exist, their families, and one model's report row."""

from __future__ import annotations

import fnmatch
import random
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SOURCES = ("timm", "torchvision")

#: Report columns, in order.
FIELDS = [
    "model", "source", "family", "status", "frontend", "nodes", "blocks", "largest_share",
    "widest_cut", "params",
    "seconds", "peak_mb", "error_class", "error",
    "groups", "refines", "straddling", "boundaries", "boundaries_cut",
]  # fmt: skip

Row = dict[str, Any]


@dataclass(frozen=True)
class ZooModel:
    """A model to run: its specification, where it comes from and its family."""

    spec: str
    source: str
    family: str


def timm_models(pattern: str = "*") -> list[ZooModel]:
    """Every ``timm.list_models()`` name matching ``pattern``; family = defining module."""
    import timm

    module_of = {
        name: module for module in timm.list_modules() for name in timm.list_models(module=module)
    }
    return [
        ZooModel(name, "timm", module_of.get(name, name.split("_")[0]))
        for name in timm.list_models()
        if fnmatch.fnmatch(name, pattern)
    ]


def torchvision_models(pattern: str = "*") -> list[ZooModel]:
    """Every torchvision classification model matching ``pattern``."""
    from torchvision import models

    found = []
    for name in models.list_models(module=models):
        if fnmatch.fnmatch(name, pattern):
            module = models.get_model_builder(name).__module__.rsplit(".", 1)[-1]
            found.append(ZooModel(f"torchvision:{name}", "torchvision", f"torchvision.{module}"))
    return found


def list_zoo(source: str = "all", pattern: str = "*") -> list[ZooModel]:
    """The models of ``source`` (timm, torchvision or all) whose name matches ``pattern``."""
    listers = {"timm": timm_models, "torchvision": torchvision_models}
    chosen = SOURCES if source == "all" else (source,)
    return [m for s in chosen for m in listers[s](pattern)]


def stratified_sample(models: Iterable[ZooModel], count: int, seed: int = 0) -> list[ZooModel]:
    """One model from each of ``count`` families spread evenly over the sorted families;
    the model within a family is drawn with ``seed``, so the sample is reproducible."""
    by_family: dict[str, list[ZooModel]] = {}
    for model in models:
        by_family.setdefault(model.family, []).append(model)
    families = sorted(by_family)
    step = max(len(families) / max(count, 1), 1.0)
    picked = [families[int(i * step)] for i in range(min(count, len(families)))]
    rng = random.Random(seed)
    return [rng.choice(sorted(by_family[f], key=lambda m: m.spec)) for f in picked]


def read_done(path: Path) -> set[str]:
    """Model specifications already in a report CSV (for ``--resume``)."""
    import csv

    if not path.exists():
        return set()
    with path.open(newline="") as handle:
        return {row["model"] for row in csv.DictReader(handle)}


def run_model(model: ZooModel) -> Row:
    """Analyze one model, validate the invariants and compare with timm's groups.

    Never raises for a model's own failure: the row says ``error`` (with the error's
    class and first line) or ``invalid`` (a partition that breaks an invariant).
    """
    from graphblocks.compare import agreement, timm_groups
    from graphblocks.pipeline import analyze_model
    from graphblocks.validate import check_invariants

    row: Row = {"model": model.spec, "source": model.source, "family": model.family}
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = analyze_model(model.spec)
        p = result.partition
        row.update(
            frontend=p.model.frontend,
            nodes=p.model.num_nodes,
            blocks=p.num_blocks,
            largest_share=max((b.share for b in p.blocks), default=0.0),
            widest_cut=max((len(b.inputs) for b in p.blocks), default=1),
            params=p.model.num_params,
        )
        assert result.model is not None  # zoo models are PyTorch models
        check_invariants(result.graph, p, [n for n, _ in result.model.named_parameters()])
        row["status"] = "ok"
        groups = timm_groups(result.model) if model.source == "timm" else None
        if groups is not None:
            agree = agreement(p, groups)
            row.update(
                groups=len(set(groups.values())), refines=int(agree.refines), straddling=len(agree.straddling),
                boundaries=agree.boundaries, boundaries_cut=agree.boundaries_cut,
            )  # fmt: skip
    except Exception as exc:  # a model's failure is a row, not a crash of the run
        from graphblocks.errors import PartitionError, first_line

        row["status"] = "invalid" if isinstance(exc, PartitionError) else "error"
        row["error_class"] = type(exc).__name__
        row["error"] = first_line(exc)
    row["seconds"] = round(time.perf_counter() - start, 2)
    return row
