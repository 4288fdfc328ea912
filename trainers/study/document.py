"""``docs/study.md``: the study's report, generated from its run folders.

Tables: the setup, the per-model block-wise results (BL1, BL2, B_opt, best Q4 block,
first and last block), the RL-Tune vs uniform table per sampling rate (the RL-Tune
paper's Table 1), the cost of each strategy; figures: the per-quartile box plots (the
block-wise paper's Fig. 6-7) and RL-Tune's gain by sampling rate. The reading of the
papers' claims is computed from the same numbers (:mod:`trainers.study.claims`).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from graphblocks import human_count, write_atomic
from trainers.jobs.job import job_name
from trainers.settings.config import default_of
from trainers.study.claims import claims_section, evaluate_claims
from trainers.study.config import ModelSpec, StudyConfig
from trainers.study.figures import plot_quartile_boxes, plot_rl_gains
from trainers.study.results import (
    PairResults,
    collect,
    mean_std,
    rl_diagnostics,
    rl_gains,
    split_sizes,
)
from trainers.study.runner import Study
from trainers.study.sanity import sanity_lines
from trainers.study.strategies import PRACTITIONER, strategies_section

PROTOCOLS = Path(__file__).with_name("protocols.md")
#: the choices and limits section, by where the sources' weights come from
CHOICES = {
    "generated": Path(__file__).with_name("choices.md"),
    "weights": Path(__file__).with_name("choices-weights.md"),
}


def cell(values: list[float], digits: int = 1) -> str:
    """``mean ± std`` in percent, or an en dash when there is nothing."""
    if not values:
        return "–"
    mean, std = mean_std(values)
    return f"{100 * mean:.{digits}f} ± {100 * std:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _source_record(study: Study, model: ModelSpec) -> dict[str, Any]:
    """The pre-training record beside the model's checkpoint ({} when there is none)."""
    path = study.checkpoint(model).with_suffix(".json")
    return json.loads(path.read_text()) if path.exists() else {}


def _context(config: StudyConfig, pairs: list[PairResults]) -> list[str]:
    """Per model: what pre-training gave it, and how the baselines and B_opt came out."""
    study = Study(config)
    rows = []
    for model in config.models:
        mine = [p for p in pairs if p.model == model.key and p.sweeps]
        record = _source_record(study, model)
        depths = [i / max(p.partition.num_blocks - 1, 1) for p in mine for i in p.b_opt()[0]]
        rows.append(
            [
                f"`{model.key}`",
                f"{100 * record['source_val_acc']:.1f}%" if "source_val_acc" in record else "–",
                cell([a for p in mine for a in p.test("head")]),
                cell([a for p in mine for a in p.test("full")]),
                cell([a for p in mine for a in p.b_opt()[1]]),
                f"{statistics.fmean(depths):.2f}" if depths else "–",
            ]
        )
    lines = [
        "",
        "What each model brought to the targets (source accuracy after pre-training) "
        "and how it did over all targets and seeds (test %, mean ± std):",
        "",
    ]
    return lines + _table(
        ["model", "source val. acc.", "BL1", "BL2", "B_opt", "B_opt depth (0 first, 1 last)"], rows
    )


def _minutes(meta: dict[str, Any], key: str) -> str:
    return f"{meta[key]:.1f} min" if key in meta else "not recorded"


def _models_table(config: StudyConfig, pairs: list[PairResults]) -> list[str]:
    """Per model: family, factory, size, blocks, and what pre-training gave it."""
    study = Study(config)
    rows = []
    for model in config.models:
        partition = next(p.partition for p in pairs if p.model == model.key)
        record = _source_record(study, model)
        source = f"{100 * record['source_val_acc']:.1f}%" if "source_val_acc" in record else "–"
        args = ", ".join(f"{k}={v}" for k, v in model.model_args.items()) or "–"
        rows.append(
            [
                f"`{model.key}`",
                model.family or "–",
                f"`{model.name}` ({args})",
                human_count(partition.model.num_params),
                str(partition.num_blocks),
                source,
                f"{record.get('seconds', '–')}",
            ]
        )
    header = [
        "model",
        "family",
        "timm / factory (arguments)",
        "params",
        "blocks",
        "source val. acc.",
        "pre-train s",
    ]
    return _table(header, rows)


def _targets_table(config: StudyConfig) -> list[str]:
    """Per target: its kind, where its images come from, classes and split sizes."""
    sizes = split_sizes(config)
    rows = []
    for target in config.targets:
        s = sizes.get(target.name, {})
        where = (
            f"`{target.path}`"
            if target.kind == "folder"
            else f"generated, {target.per_class} per class"
        )
        rows.append(
            [
                target.name,
                target.kind,
                where,
                str(s.get("classes", "–")),
                f"{s.get('train', '–')} / {s.get('val', '–')} / {s.get('test', '–')}",
            ]
        )
    return _table(["target", "kind", "images", "classes", "train / val / test"], rows)


def _settings_lines(config: StudyConfig, meta: dict[str, Any]) -> list[str]:
    """Source weights, fine-tuning settings, seeds, RL-Tune's budget, machine and time."""
    train = {"epochs": default_of("epochs"), **config.train}
    src = config.source
    return [
        f"- Source weights: **{src.kind}**"
        + (
            f" — {src.classes} classes × {src.per_class} images at {config.input_size} px, "
            f"{src.epochs} epochs of AdamW (one-cycle, peak {src.lr:g}), flips and shifts."
            if src.kind == "generated"
            else "."
        ),
        "- Every fine-tuning run: "
        + ", ".join(f"{k} = {v}" for k, v in sorted(train.items()))
        + ".",
        f"- Seeds {list(config.seeds)} (a seed sets the split, the sampling and every job's initialisation);"
        " cells are mean ± sample standard deviation over seeds, test accuracy in %.",
        f"- RL-Tune: {config.rltune.episodes} episodes × {config.rltune.epochs} epochs, one rate per "
        f"{config.rltune.granularity}; its uniform baseline trains the same "
        f"{config.rltune.total_epochs} epochs. Sampling rates "
        + ", ".join(f"{r:.0%}" for r in config.sample_rates)
        + " of the training split (validation and test unchanged).",
        f"- Machine: {meta.get('machine', '?')}, {config.workers} worker process(es). Wall time "
        f"of the last invocation {_minutes(meta, 'wall_minutes')} (pre-training "
        f"{_minutes(meta, 'pretrain_minutes')}); all invocations together "
        f"{_minutes(meta, 'wall_minutes_all_invocations')}.",
    ]


def _setup(config: StudyConfig, pairs: list[PairResults], meta: dict[str, Any]) -> list[str]:
    return [
        "## Setup",
        "",
        "### Models",
        "",
        *_models_table(config, pairs),
        "",
        "### Targets",
        "",
        *_targets_table(config),
        "",
        "### Settings",
        "",
        *_settings_lines(config, meta),
    ]


def _blockwise_table(pairs: list[PairResults]) -> list[str]:
    """Per (model, target): BL1, BL2, B_opt, the best Q4 block, first and last block."""
    rows = []
    for pair in pairs:
        if not pair.sweeps:
            continue
        chosen, b_opt = pair.b_opt()
        q4 = pair.best_q4_block()
        last = pair.partition.num_blocks - 1
        rows.append(
            [
                f"`{pair.model}`",
                pair.target,
                cell(pair.test("head")),
                cell(pair.test("full")),
                cell(b_opt) + f" ({', '.join(map(str, chosen))})",
                (cell(pair.block_test(q4)) + f" ({q4})") if q4 is not None else "–",
                cell(pair.block_test(0)),
                cell(pair.block_test(last)) + f" ({last})",
                cell(pair.quartile_test("4")),
            ]
        )
    header = [
        "model",
        "target",
        "BL1 (head)",
        "BL2 (all)",
        "B_opt (blocks)",
        "best Q4 block",
        "first block",
        "last block",
        "Q4 mean",
    ]
    return _table(header, rows)


def _quartile_means(pairs: list[PairResults]) -> list[str]:
    """Per target: BL1, BL2 and each quartile's mean ± std over models."""
    rows = []
    for target in dict.fromkeys(p.target for p in pairs):
        of_target = [p for p in pairs if p.target == target and p.sweeps]
        means = {
            g: [statistics.fmean(v) for p in of_target if (v := p.test(job))]
            for g, job in (("BL1", "head"), ("BL2", "full"))
        }
        for q in "1234":
            means[f"Q{q}"] = [statistics.fmean(v) for p in of_target if (v := p.quartile_test(q))]
        rows.append([target] + [cell(means[g]) for g in ("BL1", "BL2", "Q1", "Q2", "Q3", "Q4")])
    return _table(["target", "BL1", "BL2", "Q1", "Q2", "Q3", "Q4"], rows)


def _blockwise(pairs: list[PairResults], figure: str) -> list[str]:
    return [
        "## Block-wise fine-tuning (Barakat & Huang 2023)",
        "",
        "B_opt is picked per seed on validation accuracy (the blocks chosen in brackets); "
        "the best Q4 block is the Q4 block with the best mean validation accuracy; "
        "Q4 mean is the mean over Q4's blocks.",
        "",
        *_blockwise_table(pairs),
        "",
        "### Per quartile, all models (Fig. 6-7 style)",
        "",
        f"![per-quartile box plots]({figure})",
        "",
        "Each box holds one point per block of every model in that quartile (mean over "
        "seeds); BL1 and BL2 one point per model.",
        "",
        "Mean ± std over models:",
        "",
        *_quartile_means(pairs),
    ]


def _rltune(
    pairs: list[PairResults],
    rates: tuple[float, ...],
    figure: str,
    diagnostics: dict[float, dict[str, float]],
    uniform_lr: float,
) -> list[str]:
    lines = [
        "## RL-Tune vs uniform fine-tuning (Mahmud et al. 2022, Table 1 style)",
        "",
        "Same data, split, seed and number of epochs; the uniform baseline trains every "
        "layer at one Adam rate and keeps its best epoch by validation.",
        "",
    ]
    header = ["target", "model", "method"] + [f"{r:.0%}" for r in rates]
    rows = []
    for pair in pairs:
        for job, label in (("uniform", "uniform"), ("rltune", "RL-Tune")):
            rows.append(
                [pair.target, f"`{pair.model}`", label]
                + [cell(pair.rl_test(r, job)) for r in rates]
            )
    gains = rl_gains(pairs, rates)
    rows.append(
        ["all", "all", "**RL-Tune − uniform**"] + [f"**{cell(gains.get(r, []))}**" for r in rates]
    )
    lines += _table(header, rows)
    return [
        *lines,
        "",
        f"![RL-Tune − uniform by sampling rate]({figure})",
        "",
        *_rl_why(diagnostics, rates, uniform_lr),
    ]


def _rl_why(
    diagnostics: dict[float, dict[str, float]], rates: tuple[float, ...], uniform_lr: float
) -> list[str]:
    """Where RL-Tune's result comes from: its training, or the final moving average."""
    if not diagnostics:
        return []
    lines = [
        "Where the difference comes from (means over models, targets and seeds; validation "
        "accuracy in points, learning rates averaged over units and the epoch's steps; "
        f"uniform fine-tuning uses {uniform_lr:g}):",
        "",
    ]
    rows = []
    for rate in rates:
        d = diagnostics.get(rate, {})
        points = [f"{100 * d[k]:+.1f}" if k in d else "–" for k in ("target_gap", "final_gap")]
        lrs = [f"{d[k]:.2g}" if k in d else "–" for k in ("first_lr", "last_lr")]
        rows.append([f"{rate:.0%}", *points, *lrs])
    return lines + _table(
        [
            "rate",
            "last target − uniform",
            "final model − uniform",
            "agent's rate, first epoch",
            "agent's rate, last epoch",
        ],
        rows,
    )


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "–"


def _seconds(pairs: list[PairResults], job: str, rate: float | None = None) -> list[float]:
    """Wall seconds of ``job`` in every run of ``pairs`` (sweeps, or RL-Tune at ``rate``)."""
    return [s for p in pairs for s in p.seconds(job, rate)]


Cost = tuple[str, int | None, list[float]]  # strategy, trainable parameters, wall seconds


def _model_costs(pairs: list[PairResults], full_rate: float) -> list[Cost]:
    """One model's strategies: what each trains and how long one run of it took."""
    first = pairs[0]
    blocks = [job_name("block", b.index) for b in first.partition.blocks]
    block_params = [first.trainable(job) or 0 for job in blocks]
    whole = {
        kind: [s for p in pairs for s in p.run_seconds.get(kind, {}).values()]
        for kind in ("sweep", "halving")
    }
    return [
        ("BL1 (head)", first.trainable("head"), _seconds(pairs, "head")),
        ("BL2 (all layers)", first.trainable("full"), _seconds(pairs, "full")),
        (
            "one block + head",
            int(statistics.fmean(block_params)) if block_params else None,
            [s for job in blocks for s in _seconds(pairs, job)],
        ),
        (
            "every block (finds B_opt)",
            None,
            [
                sum(jobs[j].seconds for j in blocks if j in jobs)
                for p in pairs
                for jobs in p.sweeps.values()
            ],
        ),
        ("B_opt by halving (whole run)", None, whole["halving"]),
        *[
            (label, first.trainable(job), _seconds(pairs, job))
            for job, label in PRACTITIONER.items()
        ],
        ("whole sweep run (all of the above but halving)", None, whole["sweep"]),
        (
            f"RL-Tune at {full_rate:.0%}",
            first.trainable("rltune"),
            _seconds(pairs, "rltune", full_rate),
        ),
        (
            f"uniform at {full_rate:.0%}",
            first.trainable("uniform"),
            _seconds(pairs, "uniform", full_rate),
        ),
    ]


def _costs(pairs: list[PairResults], rates: tuple[float, ...]) -> list[str]:
    rows = []
    for model in dict.fromkeys(p.model for p in pairs):
        for name, params, times in _model_costs([p for p in pairs if p.model == model], max(rates)):
            if times:
                rows.append(
                    [f"`{model}`", name, human_count(params) if params else "–", _median(times)]
                )
    lines = [
        "## Cost of each strategy",
        "",
        "Median wall seconds of one run over targets and seeds, on the study's worker "
        "processes (one thread each); trainable parameters (mean over blocks for "
        "“one block”). A block-wise run reuses cached activations of the frozen blocks "
        "before it (docs/trainer-speed.md).",
        "",
    ]
    return lines + _table(["model", "strategy", "trainable params", "wall s / run"], rows)


#: the report's first paragraph, by where the sources' weights come from
INTRODUCTIONS = {
    "generated": "Pre-trained weights and the papers' data sets cannot be downloaded on the "
    "machines this project is built on, so this study pre-trains small models of four families "
    "on a generated source task and fine-tunes them on targets with real pixels. It tests the "
    "papers' *claims*, not their absolute numbers. The same command runs the papers' own "
    "protocols when given real data and weights (last section).",
    "weights": "The sources carry real ImageNet weights, installed from the package registry "
    "as another implementation's checkpoints and ported onto timm's models by graph structure "
    "(docs/weights.md); each is checked on two photographs below before it is fine-tuned. The "
    "targets "
    "have real pixels. The papers' data sets cannot be downloaded here, so this tests their "
    "*claims* on small targets, not their absolute numbers.",
    "pretrained": "The sources carry timm's or torchvision's ImageNet weights (the papers' "
    "protocol).",
}


def _choices(kind: str) -> str:
    path = CHOICES.get(kind)
    return path.read_text(encoding="utf-8").rstrip() if path else ""


def write_report(config: StudyConfig, meta: dict[str, Any], *, infer: bool = True) -> Path:
    """Write the report (and its figures) from the study's run folders; without
    ``infer`` no model runs (the sanity checks are read, never made)."""
    pairs = collect(config)
    docs = Path(config.docs)
    images = Path(config.images)
    relative = os.path.relpath(images, docs.parent)
    by_target = {t.name: [p for p in pairs if p.target == t.name] for t in config.targets}
    plot_quartile_boxes(by_target, images / "quartiles.png")
    gains = rl_gains(pairs, config.sample_rates)
    plot_rl_gains(gains, images / "rltune-gain.png")
    claims = evaluate_claims(pairs, config.sample_rates)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# {config.title}",
        "",
        f"*Generated by `graphblocks-train study {config.config_path}` on {when}; do not edit "
        "by hand: change the code or the config and run it again.*",
        "",
        INTRODUCTIONS[config.source.kind],
        "",
        *claims_section(claims),
        *sanity_lines(Study(config).sanity_checks(compute=infer)),
        *_context(config, pairs),
        "",
        *_setup(config, pairs, meta),
        "",
        *_blockwise(pairs, f"{relative}/quartiles.png"),
        "",
        *strategies_section(pairs, config.sample_rates),
        "",
        *_rltune(
            pairs,
            config.sample_rates,
            f"{relative}/rltune-gain.png",
            rl_diagnostics(pairs, Path(config.out)),
            float(config.train.get("lr", default_of("lr"))),
        ),
        "",
        *_costs(pairs, config.sample_rates),
        "",
        _choices(config.source.kind),
        "",
        PROTOCOLS.read_text(encoding="utf-8").rstrip(),
        "",
    ]
    write_atomic(docs, "\n".join(lines))
    summary = {
        "claims": [c.record() for c in claims],
        "meta": meta,
        "rl_gain": {f"{r:g}": mean_std(v) for r, v in gains.items()},
    }
    write_atomic(docs.with_suffix(".json"), json.dumps(summary, indent=1) + "\n")
    return docs


def machine() -> str:
    """A short description of this machine."""
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
