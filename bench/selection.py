"""B_opt without a full sweep, measured against full sweeps (docs/selection.md).

For every (model, target, seed) sweep of a study config this runs, in worker processes
of one torch thread each:

1. the **full sweep** (every block for the full budget, no baselines);
2. each **selector** (``--select halving``, ``gradnorm``, …) with the same settings, so
   the last rung's block reproduces the full sweep's result for it bit for bit.

Then it **replays successive halving** on the full sweeps' per-epoch validation scores
(``metrics/block-K.jsonl``) for a grid of first rungs r₀ and reduction factors η, and
for three ranking rules: with shared block seeds a rung is exactly a prefix of the full
sweep's job, so the replay picks the block the real run would pick. The defaults of
``--select halving`` are chosen from that grid; the real runs then measure their wall time.

Each run folder resumes, so the benchmark can be stopped and continued.

    python bench/selection.py                 # configs/selection-benchmark.toml
    python bench/selection.py --selectors ""  # only the full sweeps and the replay
    python bench/selection.py --side-by-side  # whole runs' wall time, full sweep and halving
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from doc_tables import replace_between  # noqa: E402

#: asha runs on a local Ray cluster in this process (use --workers 1 with it)
RAY_SELECTORS = {"asha": {"executor": "ray", "workers": 2}}
#: the replayed grid: first rung r₀ × reduction factor η
GRID_FIRST = (1, 2, 3, 4)
GRID_ETA = (2, 3, 4)
#: issue 25's threshold: a selector's B_opt within 1 point (test) of the full sweep's
GOAL_GAP = 1.0

Key = tuple[str, str, str]  # (model, target, seed)
Epoch = tuple[float, float]  # (val_acc, val_loss) after one epoch


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's ρ: Pearson's correlation of the ranks (ties share their mean rank)."""

    def ranks(values: Sequence[float]) -> list[float]:
        order = sorted(range(len(values)), key=lambda i: values[i])
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    var = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return cov / var if var else float("nan")


# ---- running ----------------------------------------------------------------------------
def _one(settings: dict[str, Any]) -> dict[str, Any]:
    """A worker's job: one run folder (resumed when it exists); its results.json."""
    from trainers.session import run
    from trainers.settings.config import TrainConfig

    began = time.perf_counter()
    results = run(TrainConfig(**settings))
    return {"results": results.to_dict(), "wall": time.perf_counter() - began}


def _tasks(
    study: Any,
    out: Path,
    seeds: str,
    methods: list[str],
    only: dict[str, list[str] | None],
    extra: dict[str, Any] | None = None,
) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every sweep of the study (``only``: of these ``models`` and ``targets``): its full
    sweep (no baselines) and each selector, with ``extra`` settings."""
    tasks = []
    for unit in study.runs():
        wanted = all(not keep or value in keep for value, keep in (
            (unit.model, only.get("models")), (unit.target, only.get("targets"))))  # fmt: skip
        if unit.kind != "sweep" or not wanted:
            continue
        key = (unit.model, unit.target, str(unit.seed))
        folder = out / unit.model / unit.target / f"seed{unit.seed}"
        full = {**unit.settings, "baselines": False, "block_seeds": seeds}
        tasks.append(((*key, "full"), {**full, "out": str(folder / "full")}))
        for method in methods:
            settings = {**full, **(extra or {}), "out": str(folder / method), "select": method}
            tasks.append(((*key, method), {**settings, **RAY_SELECTORS.get(method, {})}))
    return tasks


# ---- replaying successive halving on the full sweeps' epochs ------------------------------
def histories(folder: Path, blocks: int) -> dict[int, list[Epoch]]:
    """Each block's (val_acc, val_loss) after every epoch of the full sweep in ``folder``."""
    out = {}
    for block in range(blocks):
        lines = (folder / "metrics" / f"block-{block}.jsonl").read_text().splitlines()
        out[block] = [(r["val_acc"], r["val_loss"]) for r in map(json.loads, lines)]
    return out


def _score_key(epoch: Epoch) -> tuple[float, ...]:
    """The trainers' own order of scores (:class:`trainers.jobs.results.Score`)."""
    from trainers.jobs.results import Score

    return Score(*epoch).key()


def _best(epochs: Sequence[Epoch]) -> Epoch:
    """The best epoch by the trainers' rule: higher accuracy, then lower loss, earlier."""
    return min(epochs, key=_score_key)


#: how a rung ranks its blocks, from their best epoch so far (lower sorts first)
RULES: dict[str, Callable[[Epoch], tuple[float, ...]]] = {
    "accuracy, then loss (the rule)": _score_key,
    "accuracy, then position (before issue 25)": lambda e: (-e[0],),
    "loss only": lambda e: (e[1],),
}


def replay(
    history: dict[int, list[Epoch]],
    full: int,
    eta: int,
    first: int,
    rule: Callable[[Epoch], tuple[float, ...]] = RULES["accuracy, then loss (the rule)"],
) -> tuple[int, int]:
    """(chosen block, block epochs trained) of successive halving replayed on
    ``history``, rung for rung as :func:`trainers.selection.halving.successive_halving`
    runs it (its rungs from :func:`trainers.selection.rungs.rung_epochs`)."""
    from trainers.selection.rungs import kept_count, rung_epochs

    milestones = rung_epochs(full, eta, first)
    survivors, done, spent = sorted(history), dict.fromkeys(history, 0), 0
    for k, epochs in enumerate(milestones):
        last = k == len(milestones) - 1 or len(survivors) == 1
        epochs = full if last else epochs
        spent += sum(epochs - done[b] for b in survivors)
        done.update(dict.fromkeys(survivors, epochs))
        keep = kept_count(k, milestones, len(survivors), eta, last)
        order = sorted(survivors, key=lambda b: (*rule(_best(history[b][:epochs])), b))
        survivors = sorted(order[:keep])
        if last:
            break
    return survivors[0], spent


def _grid(sweeps: dict[Key, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every (r₀, η, rule) replayed on every sweep: per sweep, its regime (transferred
    weights or random init), the gap in test points and the share of block epochs."""
    rows = []
    for first in GRID_FIRST:
        for eta in GRID_ETA:
            for rule_name, rule in RULES.items():
                runs = []
                for sweep in sweeps.values():
                    full, tests = sweep["epochs"], sweep["tests"]
                    block, spent = replay(sweep["history"], full, eta, first, rule)
                    runs.append((sweep["regime"], 100 * (tests[sweep["best"]] - tests[block]),
                                 spent / (len(tests) * full)))  # fmt: skip
                rows.append({"first": first, "eta": eta, "rule": rule_name, "runs": runs})
    return rows


def _hits(gaps: Sequence[float]) -> float:
    return sum(g <= GOAL_GAP for g in gaps) / len(gaps)


def _gaps(row: dict[str, Any], regime: str) -> list[float]:
    return [gap for r, gap, _ in row["runs"] if r == regime]


def _count(gaps: Sequence[float]) -> str:
    return f"{sum(g <= GOAL_GAP for g in gaps)}/{len(gaps)}"


def _grid_table(rows: list[dict[str, Any]], rule: str, regimes: Sequence[str]) -> str:
    head = [
        "r₀",
        "η",
        *(f"{r}: within 1 pt (mean gap)" for r in regimes),
        "all runs",
        "block epochs",
    ]
    lines = ["| " + " | ".join(head) + " |", "|---:|---:|" + "---:|" * (len(regimes) + 2)]
    for row in (r for r in rows if r["rule"] == rule):
        cells = [str(row["first"]), str(row["eta"])]
        for regime in regimes:
            gaps = _gaps(row, regime)
            cells.append(f"{_count(gaps)} ({statistics.fmean(gaps):.2f} pt)" if gaps else "-")
        every = [gap for _, gap, _ in row["runs"]]
        shares = [share for _, _, share in row["runs"]]
        cells += [f"{_count(every)} ({_hits(every):.0%})", f"{max(shares):.0%}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _rule_table(rows: list[dict[str, Any]], defaults: dict[str, tuple[int, int]]) -> str:
    """Each rung-ranking rule, replayed at each regime's default (r₀, η)."""
    lines = ["| rung ranking | " + " | ".join(f"{r} at r₀ {f}, η {e}" for r, (f, e) in
                                            defaults.items()) + " |",
             "|---|" + "---:|" * len(defaults)]  # fmt: skip
    for rule in RULES:
        cells = [rule]
        for regime, (first, eta) in defaults.items():
            [row] = [r for r in rows if (r["first"], r["eta"], r["rule"]) == (first, eta, rule)]
            gaps = _gaps(row, regime)
            cells.append(f"{_count(gaps)} ({statistics.fmean(gaps):.2f} pt)" if gaps else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---- comparing the real selector runs ------------------------------------------------------
#: the two regimes of the first rung's default (trainers.settings.scaling)
TRANSFERRED, RANDOM_INIT = "transferred weights", "random init"


def _sweep(results: dict[str, Any], folder: Path, regime: str) -> dict[str, Any]:
    """What the replay and the rows need of one full sweep."""
    blocks = [j for j in results["strategies"] if j["name"].startswith("block:")]
    history = histories(folder, len(blocks))
    return {
        "best": results["best_block"]["index"],
        "tests": [j["test_acc"] for j in blocks],
        "vals": [j["val_acc"] for j in blocks],
        "seconds": sum(j["seconds"] for j in blocks),
        "epochs": max(len(h) for h in history.values()),
        "history": history,
        "regime": regime,
    }


def _row(sweep: dict[str, Any], chosen: dict[str, Any]) -> dict[str, Any]:
    """How one selector's B_opt and cost compare with the full sweep's."""
    best, mine = sweep["best"], chosen["best_block"]
    selection = chosen["selection"]
    row = {
        "full_block": best, "full_test": sweep["tests"][best], "block": mine["index"],
        "test": mine["test_acc"], "gap": 100 * (sweep["tests"][best] - mine["test_acc"]),
        "share": selection["epochs_run"] / selection["epochs_full_sweep"],
        "seconds": selection["seconds"], "full_seconds": sweep["seconds"],
        "stands": (mine.get("confidence") or {}).get("stands"),
    }  # fmt: skip
    if selection.get("scores"):
        row["rho"] = spearman(selection["scores"], sweep["vals"])
    return row


def _cell(v: dict[str, Any], method: str) -> list[str]:
    cells = [f"{v['block']} ({100 * v['test']:.1f})", f"{v['gap']:.1f}", f"{v['share']:.0%}"]
    if method == "gradnorm":
        cells.append(f"{v['rho']:+.2f}")
    if method == "halving":
        cells.append("-" if v["stands"] is None else f"{v['stands']:.0%}")
    return cells


def _table(rows: dict[Key, dict[str, dict[str, Any]]], methods: list[str]) -> str:
    head = ["model", "target", "seed", "full sweep B_opt (test %)"]
    align = ["---", "---", "---:", "---"]
    for method in methods:
        extra = {"gradnorm": ["ρ"], "halving": ["stands"]}.get(method, [])
        head += [f"{method}: block (test %)", "gap (pt)", "epochs", *extra]
        align += ["---", "---:", "---:", *["---:"] * len(extra)]
    head.append(f"seconds full / {' / '.join(methods)}")
    align.append("---")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for (model, target, seed), by in sorted(rows.items()):
        first = by[methods[0]]
        cells = [model, target, seed, f"{first['full_block']} ({100 * first['full_test']:.1f})"]
        for method in methods:
            cells += _cell(by[method], method)
        seconds = [first["full_seconds"], *(by[m]["seconds"] for m in methods)]
        cells.append(" / ".join(f"{x:.0f}" for x in seconds))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _summary(rows: dict[Key, dict[str, dict[str, Any]]], methods: list[str]) -> str:
    def share(method: str, test: Callable[[dict[str, Any]], bool]) -> str:
        hits = [test(by[method]) for by in rows.values()]
        return f"{sum(hits)}/{len(hits)} ({sum(hits) / len(hits):.0%})"

    lines = []
    for method in methods:
        values = [by[method] for by in rows.values()]
        epochs = [v["share"] for v in values]
        seconds = sum(v["seconds"] for v in values) / sum(v["full_seconds"] for v in values)
        lines.append(
            f"- **{method}**: B_opt within 1 point of the full sweep's in {share(method, lambda v: v['gap'] <= GOAL_GAP)} runs; "
            f"the same block in {share(method, lambda v: v['block'] == v['full_block'])}; "
            f"mean gap {statistics.fmean(v['gap'] for v in values):.2f} pt (max {max(v['gap'] for v in values):.1f}); "
            f"{statistics.fmean(epochs):.0%} of the full sweep's block epochs (max {max(epochs):.0%}); "
            f"{seconds:.0%} of its block seconds (all runs summed)."
        )
    if "gradnorm" in methods:
        rhos = [r for r in (by["gradnorm"]["rho"] for by in rows.values()) if r == r]
        lines.append(
            f"- **gradnorm (Auto-RGN) ranking vs the full sweep's validation ranking**: Spearman ρ "
            f"mean {statistics.fmean(rhos):+.2f}, median {statistics.median(rhos):+.2f}, range "
            f"{min(rhos):+.2f} … {max(rhos):+.2f} over {len(rhos)} runs."
        )
    return "\n".join(lines)


def _confidence_lines(rows: dict[Key, dict[str, dict[str, Any]]]) -> str:
    """Whether the bootstrap's 'stands' tells a firm choice from a coin flip."""
    from trainers.jobs.confidence import COIN_FLIP

    pairs = [
        (v["stands"], v["gap"])
        for by in rows.values()
        for v in [by.get("halving", {})]
        if v.get("stands") is not None
    ]
    if not pairs:
        return ""
    flips = [g for s, g in pairs if s < COIN_FLIP]
    firm = [g for s, g in pairs if s >= COIN_FLIP]

    def part(gaps: list[float], what: str) -> str:
        if not gaps:
            return f"no {what}"
        return f"{len(gaps)} {what}, within 1 point in {_hits(gaps):.0%}, mean gap {statistics.fmean(gaps):.2f} pt"

    return (
        f"- **halving's confidence** (bootstrap at its last decision): "
        f"{part(firm, f'choices standing in ≥ {COIN_FLIP:.0%} of resamples')}; "
        f"{part(flips, 'coin-flip choices')}."
    )


def _side_by_side(
    study: Any, out: Path, workers: int, seeds: str, only: dict[str, list[str] | None]
) -> str:
    """The wall time of whole runs, measured side by side: for the first seed of every
    (model, target), a full sweep and a halving run in fresh folders, queued alternately
    on the ``workers`` so both kinds run under the same load; their ratio per pair and in
    all."""
    from trainers.study.runner import parallel

    first = min(study.config.seeds)
    tasks = [t for t in _tasks(study, out, seeds, ["halving"], only) if t[0][2] == str(first)]
    walls = {key: record["wall"] for key, record in parallel(_one, tasks, workers)}
    pairs = sorted({key[:3] for key in walls})
    lines = [
        "| model | target | full sweep (s) | halving (s) | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for model, target, seed in pairs:
        full, halving = (
            walls[(model, target, seed, "full")],
            walls[(model, target, seed, "halving")],
        )
        lines.append(f"| {model} | {target} | {full:.0f} | {halving:.0f} | {halving / full:.0%} |")
    total = sum(walls[(*p, "halving")] for p in pairs) / sum(walls[(*p, "full")] for p in pairs)
    lines.append(f"| all | | | | **{total:.0%}** |")
    return "\n".join(lines)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/selection-benchmark.toml")
    parser.add_argument("--out", help="the run folders [the config's out]")
    parser.add_argument("--docs", default="docs/selection.md")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--selectors", default="halving,gradnorm", help="comma-separated")
    parser.add_argument("--models", help="comma-separated model labels [all of the config's]")
    parser.add_argument("--targets", help="comma-separated [all of the config's]")
    parser.add_argument("--min-epochs", type=int, help="the selectors' first rung [auto]")
    parser.add_argument(
        "--block-seeds", choices=("own", "shared"), default="shared",
        help="the block jobs' seeding (the replay is exact only with shared)",
    )  # fmt: skip
    parser.add_argument(
        "--side-by-side", action="store_true",
        help="instead: whole runs' wall time, full sweep and halving on the same workers (seed 0)",
    )  # fmt: skip
    return parser.parse_args()


def _command(args: argparse.Namespace) -> str:
    command = f"python bench/selection.py --config {args.config}"
    for flag in ("selectors", "models", "targets", "min_epochs"):
        value = getattr(args, flag)
        if value is not None and not (flag == "selectors" and value == "halving,gradnorm"):
            command += f" --{flag.replace('_', '-')} '{value}'"
    return command + (f" --block-seeds {args.block_seeds}" if args.block_seeds != "shared" else "")


def _report(
    args: argparse.Namespace, sweeps: dict[Key, dict[str, Any]],
    rows: dict[Key, dict[str, dict[str, Any]]], methods: list[str], seconds: float,
) -> str:  # fmt: skip
    """The generated section of docs/selection.md."""
    from trainers.settings import default_of
    from trainers.settings.scaling import FIRST_RUNG_RANDOM_INIT, FIRST_RUNG_TRANSFERRED

    grid = _grid(sweeps)
    eta = default_of("eta")
    defaults = {
        TRANSFERRED: (FIRST_RUNG_TRANSFERRED, eta),
        RANDOM_INIT: (FIRST_RUNG_RANDOM_INIT, eta),
    }
    body = [
        f"Command: `{_command(args)}`; {len(sweeps)} full sweeps; wall time of this invocation "
        f"{seconds:.0f} s with {args.workers} workers.",
        "",
        "Successive halving replayed on the full sweeps with the rule (accuracy, then loss): "
        f"runs within {GOAL_GAP:g} point of the full sweep's B_opt on test, and the most "
        "block epochs any run spent, as a share of the full sweep's:",
        "",
        _grid_table(grid, next(iter(RULES)), [TRANSFERRED, RANDOM_INIT]),
        "",
        "The rung's ranking rule, replayed at each regime's default first rung:",
        "",
        _rule_table(grid, defaults),
    ]
    if rows:
        body += [
            "",
            "The selectors run for real, with their defaults:",
            "",
            _summary(rows, methods),
        ]
        body += [line for line in [_confidence_lines(rows)] if line]
        body += ["", _table(rows, methods)]
    return "\n".join(body)


def main() -> None:
    args = _arguments()
    from trainers.study import load_study
    from trainers.study.runner import Study, parallel

    study = Study(load_study(args.config))
    study.make_data()
    study.make_partitions()
    out = Path(args.out or study.config.out)
    only = {
        k: getattr(args, k).split(",") if getattr(args, k) else None for k in ("models", "targets")
    }
    if args.side_by_side:
        table = _side_by_side(study, out / "side-by-side", args.workers, args.block_seeds, only)
        body = f"Command: `{_command(args)} --side-by-side` ({args.workers} workers)\n\n{table}"
        replace_between(ROOT / args.docs, f"selection-{Path(args.config).stem}-side-by-side", body)
        print(table)
        return
    methods = [m for m in args.selectors.split(",") if m]
    only = {
        k: getattr(args, k).split(",") if getattr(args, k) else None for k in ("models", "targets")
    }
    extra = {"min_epochs": args.min_epochs} if args.min_epochs else None
    began = time.perf_counter()
    found: dict[tuple[str, ...], dict[str, Any]] = {}
    for key, record in parallel(
        _one, _tasks(study, out, args.block_seeds, methods, only, extra), args.workers
    ):
        found[key] = record
        print(f"{'/'.join(key)}: {record['wall']:.0f} s", flush=True)
    random_init = {m.key for m in study.config.models if m.random_init}
    sweeps = {
        key[:3]: _sweep(record["results"], out / key[0] / key[1] / f"seed{key[2]}" / "full",
                        RANDOM_INIT if key[0] in random_init else TRANSFERRED)
        for key, record in found.items() if key[3] == "full"
    }  # fmt: skip
    rows: dict[Key, dict[str, dict[str, Any]]] = {}
    for (model, target, seed, method), record in found.items():
        if method != "full":
            row = _row(sweeps[(model, target, seed)], record["results"])
            rows.setdefault((model, target, seed), {})[method] = row
    name = f"selection-{Path(args.config).stem}-{args.block_seeds}-seeds"
    docs = ROOT / args.docs
    replace_between(docs, name, _report(args, sweeps, rows, methods, time.perf_counter() - began))
    docs.with_name(f"{name}.json").write_text(json.dumps(
        {"runs": {"/".join(k): by for k, by in rows.items()},
         "grid": _grid(sweeps)}, indent=1) + "\n")  # fmt: skip
    print(f"wrote {docs}")


if __name__ == "__main__":
    main()
