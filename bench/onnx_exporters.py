"""Benchmark: ONNX files from the exporters people use, partitioned and named (docs/onnx.md).

    python bench/onnx_exporters.py                 # every exporter whose environment exists
    python bench/onnx_exporters.py --only keras3 tf_keras --apps MobileNetV2

Per exporter and model: the block count, and the naming coverage, the share of the source
model's layers that carry weights which the partition names by their own name (a Keras
layer in ``export --to keras``; a module path or Paddle layer name in the partition's
layers). Keras models are converted in ``.venv-tf`` (``make setup-keras``) by
tests_keras/keras_side.py, Paddle models in ``.venv-paddle`` (``make setup-paddle``) by
bench/paddle_side.py; torch exports run here. Each part writes ``layers.json`` (the source
model's weighted layers) beside its ``model.onnx``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.doc_tables import replace_between  # noqa: E402

#: the block-wise paper's Keras models (keras.applications)
KERAS_APPS = [
    "ResNet50V2",
    "MobileNetV2",
    "VGG16",
    "DenseNet121",
    "EfficientNetV2B0",
    "Xception",
    "NASNetMobile",
]
TORCH_MODELS = ["resnet50", "mobilenetv2_100", "vit_tiny_patch16_224"]
PADDLE_MODELS = ["resnet50", "mobilenet_v2", "vgg16"]


def keras_case(flavour: str, app: str, weights: str, size: int, work: Path) -> dict[str, Any]:
    """Convert one keras.applications model with tf2onnx; partition; export --to keras."""
    import graphblocks

    out = work / f"{flavour}-{app}-{weights}"
    subprocess.run([str(ROOT / ".venv-tf" / "bin" / "python"), str(ROOT / "tests_keras" / "keras_side.py"),
                    "convert", flavour, str(out), "--app", app, "--size", str(size), "--weights", weights],
                   check=True, capture_output=True)  # fmt: skip
    partition = graphblocks.analyze(str(out / "model.onnx"))
    graphblocks.export(partition, "keras", out / "keras.json")
    export = json.loads((out / "keras.json").read_text())
    listed = [n for b in export["blocks"] for n in b["layers"]] + export["head"]["layers"]
    weighted = [layer["name"] for layer in json.loads((out / "layers.json").read_text())["layers"]]
    return coverage_row(flavour, app, weights, len(partition.blocks), listed, weighted)


def coverage_row(exporter: str, model: str, weights: str, blocks: int, listed: list[str],
                 weighted: list[str]) -> dict[str, Any]:  # fmt: skip
    """Coverage of ``weighted`` by ``listed``: named once, named twice, missing, foreign."""
    counts = Counter(listed)
    named = [n for n in weighted if n in counts]
    return {"exporter": exporter, "model": model, "weights": weights, "blocks": blocks,
            "weighted_layers": len(weighted), "named": len(named),
            "twice": sorted(n for n, c in counts.items() if c > 1),
            "missing": [n for n in weighted if n not in counts],
            "foreign": sorted(set(counts) - set(weighted))}  # fmt: skip


def torch_case(exporter: str, name: str, work: Path) -> dict[str, Any]:
    """Export a timm model (random weights) with the dynamo exporter (``optimize=False``)
    or the TorchScript one; partition the file; coverage of the modules that own weights."""
    import timm
    import torch

    import graphblocks

    model = timm.create_model(name).eval()
    path = work / f"{exporter}-{name}.onnx"
    example = (torch.randn(1, 3, 224, 224),)
    if exporter == "torch dynamo":
        torch.onnx.export(model, example, str(path), dynamo=True, optimize=False)
    else:
        torch.onnx.export(model, example, str(path), dynamo=False)
    partition = graphblocks.analyze(str(path))
    reference = graphblocks.analyze(name)
    # the partition names the root's own parameters one by one (cls_token, pos_embed)
    weighted = [name for n, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))
                for name in ([n] if n else [p for p, _ in m.named_parameters(recurse=False)])]  # fmt: skip
    row = coverage_row(exporter, name, "random", len(partition.blocks),
                       [layer.name for layer in partition.layers], weighted)  # fmt: skip
    row["blocks_torch_fx"] = len(reference.blocks)
    return row


def paddle_case(name: str, work: Path) -> dict[str, Any]:
    """Export a paddle.vision model with paddle2onnx (bench/paddle_side.py); partition."""
    import graphblocks

    out = work / f"paddle-{name}"
    subprocess.run([str(ROOT / ".venv-paddle" / "bin" / "python"), str(ROOT / "bench" / "paddle_side.py"),
                    name, str(out)], check=True, capture_output=True)  # fmt: skip
    partition = graphblocks.analyze(str(out / "model.onnx"))
    info = json.loads((out / "layers.json").read_text())
    weighted = [layer["name"] for layer in info["layers"]]
    listed = [layer.name for layer in partition.layers]
    row = coverage_row("paddle2onnx", name, "random", len(partition.blocks), listed, weighted)
    row["num_params"] = partition.model.num_params
    row["source_params"] = info["num_params"]
    return row


Case = tuple[str, str, str, Callable[[], dict[str, Any]]]  # exporter, model, weights, run


def cases(args: argparse.Namespace, work: Path) -> list[Case]:
    """Every case the arguments ask for (``--only`` picks exporters by prefix)."""
    found: list[Case] = []
    for flavour in ("keras3", "tf_keras"):
        for app in args.apps:
            for weights in ("none", "random"):
                found.append((flavour, app, weights,
                              lambda f=flavour, a=app, w=weights: keras_case(f, a, w, args.size, work)))  # fmt: skip
    for exporter in ("torch dynamo", "torchscript"):
        for name in TORCH_MODELS:
            found.append(
                (exporter, name, "random", lambda e=exporter, n=name: torch_case(e, n, work))
            )
    for name in PADDLE_MODELS:
        found.append(("paddle2onnx", name, "random", lambda n=name: paddle_case(n, work)))
    return [case for case in found if any(case[0].startswith(o) for o in args.only)]


def failure(error: Exception) -> str:
    """The last line of what a failed case printed."""
    text = error.stderr.decode() if isinstance(error, subprocess.CalledProcessError) else str(error)
    lines = text.strip().splitlines()
    return lines[-1][:120] if lines else type(error).__name__


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| exporter | model | weights | blocks | layers with weights | named | coverage | twice | missing (first) |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for r in rows:
        if "error" in r:
            lines.append(
                f"| {r['exporter']} | {r['model']} | {r['weights']} | failed: {r['error']} | | | | | |"
            )
            continue
        share = r["named"] / max(r["weighted_layers"], 1)
        blocks = f"{r['blocks']}" + (
            f" ({r['blocks_torch_fx']} fx)" if "blocks_torch_fx" in r else ""
        )
        missing = ", ".join(f"`{n}`" for n in r["missing"][:3]) + (
            " …" if len(r["missing"]) > 3 else ""
        )
        lines.append(f"| {r['exporter']} | {r['model']} | {r['weights']} | {blocks} | {r['weighted_layers']} | "
                     f"{r['named']} | {share:.1%} | {len(r['twice'])} | {missing} |")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", nargs="+", default=KERAS_APPS)
    parser.add_argument("--size", type=int, default=96, help="Keras input size (px)")
    parser.add_argument("--only", nargs="+", default=["keras3", "tf_keras", "torch", "paddle2onnx"])
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "onnx.md")
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench" / "results" / "onnx-exporters.json"
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for exporter, model, weights, run in cases(args, Path(tmp)):
            try:
                rows.append(run())
            except Exception as error:  # the row says what failed; the other cases go on
                rows.append({"exporter": exporter, "model": model, "weights": weights,
                             "error": failure(error)})  # fmt: skip
            print(table(rows[-1:])[-1], flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1) + "\n")
    command = "python bench/onnx_exporters.py " + " ".join(sys.argv[1:])
    body = [f"Generated by `{command.strip()}` (Keras models at {args.size} px; torch models at 224 px).", "",
            *table(rows)]  # fmt: skip
    replace_between(args.docs, "exporters table", "\n".join(body))


if __name__ == "__main__":
    main()
