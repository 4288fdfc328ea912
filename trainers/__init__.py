"""Fine-tuning on graphblocks partitions: block-wise (Barakat & Huang 2023), baselines and
RL-Tune (Mahmud et al. 2022).

Reads partitions through graphblocks' public API; graphblocks never imports this package.
Entry points: the ``graphblocks-train`` command (:mod:`trainers.cli`) and the Python API
below, imported on first use (``import trainers`` stays free of torch)::

    import trainers
    results = trainers.run(trainers.TrainConfig(model="resnet18", data="d/", out="runs/r"))
    again = trainers.load_results("runs/r")

The package is layered, lowest first: ``settings`` → ``jobs`` → ``training`` →
``execution`` → ``selection`` → ``report`` → ``session`` → ``study`` → ``cli``; a
module imports only from its own layer or a lower one (tests/test_design.py).
"""

from __future__ import annotations

import importlib
from typing import Any

#: the Python API: name -> the module that defines it
API = {
    "TrainConfig": "trainers.settings",
    "resolve_config": "trainers.settings",
    "run": "trainers.session",
    "prepare": "trainers.session",
    "run_job": "trainers.session",
    "Job": "trainers.jobs.job",
    "JobResult": "trainers.jobs.job",
    "RunResults": "trainers.jobs.results",
    "load_results": "trainers.jobs.results",
    "RunFolder": "trainers.jobs.run_folder",
}

__all__ = sorted(API)


def __getattr__(name: str) -> Any:
    if name not in API:
        raise AttributeError(f"module 'trainers' has no attribute {name!r}")
    return getattr(importlib.import_module(API[name]), name)
