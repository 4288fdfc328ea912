"""How far the golden runs' trained numbers move with the CPU's kernels, and how far a real
change of settings moves them: the measurement behind ``TRAINED_TOLERANCE``.

Each golden run of ``fixtures/make_results_golden.py`` (the sweep and the RL-Tune run, with
the default evaluation and with ``eval_bn = "running"``) is repeated in a fresh process per
variant:

* kernel sets: PyTorch's dispatch as installed, each ``ATEN_CPU_CAPABILITY`` this CPU
  supports (``default``, ``avx2``, ``avx512``), and ``MKL_CBWR=COMPATIBLE``; the golden
  files as committed at 967aa47, made on another machine (kept in the results file), are
  compared too;
* real changes, which the golden test must catch: the learning rate 2% and 10% higher, one
  more epoch.

It also measures how far from a tie each choice that a loss decides lies (an epoch, or
B_opt, among equally accurate ones): a choice whose losses are closer than the kernels'
spread could flip on another CPU. For every run and variant it records whether the exact fields (counts, accuracies, hits,
epochs chosen, structure) equal the reference run's (as installed) and the largest relative
difference of a trained float (``TRAINED_FLOATS``). Results go to
``bench/results/golden-spread.json`` (a rerun skips the variants it holds) and the table into
``docs/trainers.md``::

    python bench/golden_spread.py [--fresh]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.doc_tables import replace_between  # noqa: E402
from fixtures.make_results_golden import (  # noqa: E402
    BASE,
    EVAL_BN_RUNNING,
    RUNS,
    TRAINED_TOLERANCE,
    differences,
    relative,
    run_golden,
    trained_floats,
)

RESULTS = ROOT / "bench" / "results" / "golden-spread.json"
DOCS = ROOT / "docs" / "trainers.md"
#: the four golden runs: (run name, evaluation, settings changed for it)
GOLDEN_RUNS: dict[str, tuple[str, dict[str, Any]]] = {
    "sweep": ("sweep", {}),
    "rltune": ("rltune", {}),
    "sweep, eval-bn-running": ("sweep", EVAL_BN_RUNNING),
    "rltune, eval-bn-running": ("rltune", EVAL_BN_RUNNING),
}
REFERENCE = "as installed"
#: the golden files as committed before issue 42, made on another machine, kept in the
#: results file: the regenerated ones were made here
ANOTHER_MACHINE_KEY = "another_machine"
ANOTHER_MACHINE = "golden files of 967aa47 (another machine)"
#: the variants that change only the kernels' rounding (the rest change settings)
ROUNDING = ("ATEN default", "ATEN avx2", "ATEN avx512", "MKL_CBWR=COMPATIBLE")


@dataclass(frozen=True)
class Variant:
    """One way of repeating the golden runs: an environment, or a change of settings."""

    name: str
    environment: dict[str, str] = field(default_factory=dict)
    #: a real change: settings multiplied (``lr``) or added to (``epochs``) per run
    scale: dict[str, float] = field(default_factory=dict)
    add: dict[str, int] = field(default_factory=dict)

    @property
    def is_change(self) -> bool:
        return bool(self.scale or self.add)

    def settings(self, run: str) -> dict[str, Any]:
        """The settings of golden run ``run`` that this variant changes."""
        base = {**BASE, **RUNS[run], "lr": 1e-3}
        changed: dict[str, Any] = {k: base[k] * f for k, f in self.scale.items()}
        changed.update({k: base[k] + n for k, n in self.add.items()})
        return changed


def variants() -> list[Variant]:
    """The kernel sets this CPU supports, then the real changes."""
    found = [Variant(REFERENCE), Variant("ATEN default", {"ATEN_CPU_CAPABILITY": "default"})]
    for capability in ("avx2", "avx512"):
        if capability in supported_capabilities():
            found.append(Variant(f"ATEN {capability}", {"ATEN_CPU_CAPABILITY": capability}))
    found.append(Variant("MKL_CBWR=COMPATIBLE", {"MKL_CBWR": "COMPATIBLE"}))
    found += [
        Variant("lr +2%", scale={"lr": 1.02}),
        Variant("lr +10%", scale={"lr": 1.1}),
        Variant("one more epoch", add={"epochs": 1}),
    ]
    return found


def supported_capabilities() -> set[str]:
    """The ``ATEN_CPU_CAPABILITY`` values above ``default`` that this CPU runs: the one
    PyTorch picks, and every lower one."""
    import torch

    order = ["avx2", "avx512"]
    picked = torch.backends.cpu.get_cpu_capability().lower()
    return set(order[: order.index(picked) + 1]) if picked in order else set()


CHILD = """
import json, sys
from pathlib import Path
from fixtures.make_results_golden import run_golden, without_timings
work, runs = Path(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({key: without_timings(run_golden(name, work / key.replace(", ", "-"), **changes))
                  for key, (name, changes) in runs.items()}))
"""


def run_variant(variant: Variant) -> dict[str, Any]:
    """The four golden runs' documents under ``variant``, run in a fresh process."""
    runs = {
        key: (name, {**changes, **variant.settings(name)})
        for key, (name, changes) in GOLDEN_RUNS.items()
    }
    environment = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY",)}
    environment.update(variant.environment, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory() as work:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, work, json.dumps(runs)],
            env=environment,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    return dict(json.loads(done.stdout.splitlines()[-1]))


def comparable(document: Any) -> Any:
    """``document`` without the fields added after the golden files of another machine
    were kept here (``phases``, issue 42), so that the two compare field by field."""
    if isinstance(document, dict):
        return {k: comparable(v) for k, v in document.items() if k != "phases"}
    if isinstance(document, list):
        return [comparable(v) for v in document]
    return document


def compare(documents: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """Per golden run: the exact fields' differences and the largest relative difference
    of a trained float (with its path), ``documents`` against ``reference``."""
    rows = {}
    for key in GOLDEN_RUNS:
        fresh, golden = comparable(documents[key]), comparable(reference[key])
        exact = differences(fresh, golden, tolerance=float("inf"))
        ours, theirs = trained_floats(fresh), trained_floats(golden)
        gaps = {p: relative(v, theirs[p]) for p, v in ours.items() if p in theirs}
        worst = max(gaps, key=gaps.__getitem__) if gaps else None
        rows[key] = {
            "exact_differences": exact,
            "largest_relative": gaps[worst] if worst else 0.0,
            "at": worst,
        }
    return rows


def decision_margins() -> dict[str, dict[str, float]]:
    """Per golden run, each choice that a loss decides and its relative loss gap: a job's
    epoch among its equally accurate epochs (keyed by the job's name), B_opt among equally
    accurate blocks (keyed ``B_opt``). Runs the golden runs here, as installed."""
    margins: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, (name, changes) in GOLDEN_RUNS.items():
            work = Path(tmp) / key.replace(", ", "-")
            document = run_golden(name, work, **changes)
            scores = {
                path.stem.replace("block-", "block:"): [
                    (line["val_acc"], line["val_loss"]) for line in map(json.loads, path.open())
                ]
                for path in (work / name / "metrics").glob("*.jsonl")
            }
            blocks = [r for r in document["strategies"] if r["name"].startswith("block:")]
            scores["B_opt"] = [(r["val_acc"], r["val_loss"]) for r in blocks]
            gaps = {job: _loss_margin(pairs) for job, pairs in scores.items()}
            margins[key] = {job: gap for job, gap in gaps.items() if gap is not None}
    return margins


def _loss_margin(scores: list[tuple[float, float]]) -> float | None:
    """The relative gap between the two lowest losses among the most accurate of
    ``scores`` ((accuracy, loss) pairs); None when the accuracy alone decides."""
    best = max(accuracy for accuracy, _ in scores) if scores else 0.0
    losses = sorted(loss for accuracy, loss in scores if accuracy == best)
    return relative(losses[0], losses[1]) if len(losses) > 1 else None


def job_spreads(measured: dict[str, Any], key: str) -> dict[str, float]:
    """Per job of golden run ``key``, the largest relative difference of its validation
    loss between any rounding variant (and another machine's golden files) and the reference run;
    ``B_opt``: the largest over the blocks."""
    reference = comparable(measured["variants"][REFERENCE][key])
    others = [
        comparable(docs[key]) for name, docs in measured["variants"].items() if name in ROUNDING
    ]
    others.append(measured[ANOTHER_MACHINE_KEY][key])
    spreads = {}
    for i, row in enumerate(reference["strategies"]):
        if "val_loss" in row:
            gaps = [relative(o["strategies"][i]["val_loss"], row["val_loss"]) for o in others]
            spreads[row["name"]] = max(gaps)
    spreads["B_opt"] = max((v for k, v in spreads.items() if k.startswith("block:")), default=0)
    return spreads


def closest_choice(measured: dict[str, Any], key: str) -> str:
    """The loss-decided choice of golden run ``key`` nearest to flipping: the smallest
    ratio of its loss gap to its job's spread."""
    spreads = job_spreads(measured, key)
    ratios = {
        job: gap / spreads[job] if spreads.get(job) else float("inf")
        for job, gap in measured["margins"][key].items()
    }
    if not ratios:
        return "none"
    job = min(ratios, key=ratios.__getitem__)
    times = "no spread" if ratios[job] == float("inf") else f"{ratios[job]:.0f}x its spread"
    return f"{job}: {measured['margins'][key][job]:.1e}, {times}"


def table(measured: dict[str, Any]) -> str:
    """The Markdown table of every variant against the reference run."""
    reference = measured["variants"][REFERENCE]
    compared = {ANOTHER_MACHINE: compare(measured[ANOTHER_MACHINE_KEY], reference)}
    compared.update({name: compare(docs, reference) for name, docs in measured["variants"].items()})
    changes = {v.name for v in variants() if v.is_change}
    lines = [
        f"Generated by `python bench/golden_spread.py` on {measured['cpu']} "
        f"(PyTorch picks {measured['capability']}). Each cell: the largest relative "
        "difference of a trained float from the run as installed, and, after a slash, how "
        "many exact fields differ (counts, accuracies, hits, epochs chosen, structure). "
        f"The tolerance is {TRAINED_TOLERANCE:.0e}.",
        "",
        "| variant | kind | " + " | ".join(GOLDEN_RUNS) + " |",
        "|---|---|" + "---:|" * len(GOLDEN_RUNS),
    ]
    for name, rows in compared.items():
        kind = "real change" if name in changes else "rounding"
        cells = []
        for key in GOLDEN_RUNS:
            row = rows[key]
            cell = f"{row['largest_relative']:.1e} / {len(row['exact_differences'])}"
            caught = row["exact_differences"] or row["largest_relative"] > TRAINED_TOLERANCE
            cells.append(f"**{cell}**" if caught else cell)
        lines.append(f"| {name} | {kind} | " + " | ".join(cells) + " |")
    closest = " | ".join(closest_choice(measured, key) for key in GOLDEN_RUNS)
    lines.append(f"| closest loss-decided choice | margin | {closest} |")
    lines.append("")
    lines.append(
        "Bold: the golden test fails on that run. The last row: of the choices that a loss "
        "decides (a job's epoch, or B_opt, among equally accurate ones), the one nearest to "
        "flipping: its relative loss gap, and that gap over the same job's spread across "
        "the rounding rows (no spread: its loss came out bit for bit the same in every row)."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help="rerun every variant")
    args = parser.parse_args()
    import platform

    import torch

    measured: dict[str, Any] = {"variants": {}}
    if RESULTS.exists() and not args.fresh:
        measured = json.loads(RESULTS.read_text())
    measured["cpu"] = cpu_name() or platform.processor()
    measured["capability"] = torch.backends.cpu.get_cpu_capability()
    for variant in variants():
        if variant.name in measured["variants"]:
            continue
        print(f"running {variant.name} ...", flush=True)
        measured["variants"][variant.name] = run_variant(variant)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        temporary = RESULTS.with_suffix(".tmp")
        temporary.write_text(json.dumps(measured, indent=1) + "\n")
        temporary.replace(RESULTS)
    if not isinstance(measured.get("margins", {}).get("sweep"), dict):
        measured["margins"] = decision_margins()
        RESULTS.write_text(json.dumps(measured, indent=1) + "\n")
    text = table(measured)
    print(text)
    replace_between(DOCS, "golden spread", text)
    print(f"wrote {DOCS.relative_to(ROOT)}")


def cpu_name() -> str | None:
    """The CPU's model name (Linux), with its widest vector extension."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    name = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if "model name" in line), None
    )
    flags = next((line for line in info.splitlines() if line.startswith("flags")), "")
    widest = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name}, {widest}" if name else None


if __name__ == "__main__":
    main()
