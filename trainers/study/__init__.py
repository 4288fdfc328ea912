"""A reproducible transfer study: block-wise fine-tuning vs the baselines vs RL-Tune on
models × targets × seeds, ending in a generated report (``docs/study.md``).

``graphblocks-train study configs/study.toml`` runs it; :func:`run_study` is the API.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from graphblocks import write_atomic
from trainers.study.config import StudyConfig, load_study
from trainers.study.runner import Study, StudyProgress

__all__ = ["StudyConfig", "load_study", "run_study"]


def run_study(
    config: StudyConfig, progress: StudyProgress | None = None, *, report_only: bool = False
) -> Path:
    """Carry out the study (what is finished is not redone) and write its report; the
    report's path."""
    from trainers.study.document import machine, write_report

    study = Study(config)
    meta_path = Path(config.out) / "study-meta.json"
    meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if not report_only:
        start = time.perf_counter()
        study.make_data()
        study.make_partitions()
        study.sanity_checks()
        study.pretrain_all(progress)
        pretrained = time.perf_counter()
        study.run_all(progress)
        minutes = (time.perf_counter() - start) / 60
        meta = {
            "machine": machine(),
            "wall_minutes": minutes,
            "pretrain_minutes": (pretrained - start) / 60,
            "wall_minutes_all_invocations": meta.get("wall_minutes_all_invocations", 0.0) + minutes,
        }
        write_atomic(meta_path, json.dumps(meta, indent=1) + "\n")
    return write_report(config, meta, infer=not report_only)
