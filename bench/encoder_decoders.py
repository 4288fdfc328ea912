"""Benchmark: the partition rule on the encoder–decoders people fine-tune, at each crossing
bound K (docs/partition-rule.md §2.4, issue 35).

    make bench-encoders          # installs segmentation-models-pytorch, then runs this
    python bench/encoder_decoders.py [--only Unet] [--bounds 4,5,8]

Models: segmentation-models-pytorch's Unet, UnetPlusPlus, Linknet, FPN, PSPNet and
DeepLabV3Plus with their default encoder (resnet34), a plain one (vgg16) and mobilenet_v2,
at encoder_depth 5, and with resnet34 at depths 3 and 4; torchvision's segmentation
builders and the feature networks (``.backbone``) of its detection builders, whose whole
detectors take lists of images and cannot be traced; the tests' small networks of each
class the issue names. All at 256 px (the detection backbones at 320 px).

For each model and K: the blocks, the largest block's share of the weights the forward
uses (smp keeps the encoder stages an ``encoder_depth`` below 5 drops: PSPNet's default
depth 3 leaves 93% of resnet34's weights unused, and those go with the last block that
precedes them; the table says how much), and, when it exceeds 35%, its largest layer;
the widest cut (the most tensors a segment takes), the
activation cache's largest level per image (float32 MB: every tensor crossing into a
block is cached) and the analysis time. Rows are appended to
bench/results/encoder-decoders.json as they finish, so an interrupted run resumes; the
table goes into docs/partition-rule.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.doc_tables import replace_between  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "encoder-decoders.json"
BOUNDS = (4, 5, 6, 8)
#: the issue's goal: a larger block is allowed when one layer alone exceeds it
LARGEST_GOAL = 0.35
SMP_ARCHS = ("Unet", "UnetPlusPlus", "Linknet", "FPN", "PSPNet", "DeepLabV3Plus")
SMP_ENCODERS = ("resnet34", "vgg16", "mobilenet_v2")
SEGMENTATION = (
    "fcn_resnet50",
    "deeplabv3_resnet50",
    "deeplabv3_mobilenet_v3_large",
    "lraspp_mobilenet_v3_large",
)
DETECTION = (
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "retinanet_resnet50_fpn_v2",
    "fcos_resnet50_fpn",
    "maskrcnn_resnet50_fpn_v2",
    "keypointrcnn_resnet50_fpn",
    "ssd300_vgg16",
    "ssdlite320_mobilenet_v3_large",
)
TOYS = ("PlainUNet", "PlainMultiScale", "SumCellNet", "DeepUNet")


def smp_model(arch: str, encoder: str, depth: int) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import segmentation_models_pytorch as smp

        factory = getattr(smp, arch)
        options: dict[str, Any] = {"encoder_depth": depth, "classes": 2}
        if arch in ("Unet", "UnetPlusPlus"):  # one decoder stage per encoder stage
            options["decoder_channels"] = (256, 128, 64, 32, 16)[:depth]
        return factory(encoder_name=encoder, encoder_weights=None, **options)

    return build


def torchvision_segmentation(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from torchvision.models import segmentation

        return getattr(segmentation, name)(weights=None, weights_backbone=None)

    return build


def detection_backbone(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from torchvision.models import detection

        return getattr(detection, name)(weights=None, weights_backbone=None).backbone

    return build


def toy(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from tests import toy_models

        return getattr(toy_models, name)()

    return build


def catalogue() -> dict[str, tuple[Callable[[], nn.Module], tuple[int, int, int]]]:
    """Every measured model by its row name: its builder and input size."""
    image, detector = (3, 256, 256), (3, 320, 320)
    models: dict[str, tuple[Callable[[], nn.Module], tuple[int, int, int]]] = {}
    for arch in SMP_ARCHS:
        for encoder in SMP_ENCODERS:
            models[f"smp {arch} {encoder}"] = (smp_model(arch, encoder, 5), image)
        for depth in (3, 4):
            models[f"smp {arch} resnet34 depth {depth}"] = (
                smp_model(arch, "resnet34", depth),
                image,
            )
    for name in SEGMENTATION:
        models[f"torchvision {name}"] = (torchvision_segmentation(name), image)
    for name in DETECTION:
        models[f"torchvision {name}.backbone"] = (detection_backbone(name), detector)
    for name in TOYS:
        models[f"tests {name}"] = (toy(name), (3, 64, 64))
    return models


def cache_mb(graph: Any, tensors: list[str]) -> float:
    """float32 megabytes per image of the tensors crossing into one block."""
    sizes = [math.prod(graph.nodes[t]["shape"][1:]) for t in tensors if graph.nodes[t]["shape"]]
    return 4 * sum(sizes) / 2**20


def measure(name: str, bound: int) -> dict[str, Any]:
    """One partition of one model under ``--max-crossing bound``."""
    from graphblocks.pipeline import Settings, analyze_model

    build, size = catalogue()[name]
    row: dict[str, Any] = {"model": name, "max_crossing": bound}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build().eval()
    except Exception as exc:  # a combination the library refuses to build
        return {**row, "error": f"not built: {str(exc).splitlines()[0][:120]}"}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = analyze_model(model, Settings(input_size=size, max_crossing=bound))
    seconds = time.perf_counter() - start
    p = result.partition
    sizes = {name: tensor.numel() for name, tensor in model.named_parameters()}
    unused = {name for name in p.unused if name in sizes}
    used = sum(sizes.values()) - sum(sizes[name] for name in unused)

    def used_share(block: Any) -> float:
        return sum(sizes.get(n, 0) for n in block.params if n not in unused) / used

    largest = max(p.blocks, key=used_share)
    params = {layer.name: layer.num_params for layer in p.layers}
    heaviest = max(largest.layers, key=lambda n: params.get(n, 0))
    return {
        **row,
        "blocks": p.num_blocks,
        "largest_share": used_share(largest),
        "unused_share": 1 - used / sum(sizes.values()),
        "largest_layer": heaviest,
        "largest_layer_share": params.get(heaviest, 0) / used,
        "widest_cut": max(len(b.inputs) for b in p.blocks),
        "cache_mb": max(cache_mb(result.graph, b.inputs) for b in p.blocks),
        "seconds": round(seconds, 3),
        "nodes": result.graph.number_of_nodes(),
    }


def load_rows() -> list[dict[str, Any]]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else []


def save_rows(rows: list[dict[str, Any]]) -> None:
    from graphblocks import write_atomic

    write_atomic(RESULTS, json.dumps(rows, indent=1) + "\n")


def cell(row: dict[str, Any]) -> str:
    """``blocks, largest% (widest w, cache MB)``, the largest layer named past the goal."""
    text = (
        f"{row['blocks']}, {100 * row['largest_share']:.0f}% "
        f"(w {row['widest_cut']}, {row['cache_mb']:.1f} MB)"
    )
    if row["largest_share"] > LARGEST_GOAL:
        text += f" · `{row['largest_layer']}` {100 * row['largest_layer_share']:.0f}%"
    if row["unused_share"] > 0.01:
        text += f" · {100 * row['unused_share']:.0f}% unused"
    return text


def table(rows: list[dict[str, Any]], bounds: tuple[int, ...]) -> str:
    """One line per model, one column per bound."""
    header = "| model | " + " | ".join(f"K = {k}" for k in bounds) + " |"
    lines = [header, "|---|" + "---|" * len(bounds)]
    for model in dict.fromkeys(r["model"] for r in rows):
        cells = {r["max_crossing"]: r for r in rows if r["model"] == model}
        shown = [cells[k].get("error") or cell(cells[k]) if k in cells else "" for k in bounds]
        if any(c.startswith("not built") for c in shown):
            shown = [shown[0]] + [""] * (len(bounds) - 1)
        lines.append(f"| {model} | " + " | ".join(shown) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="rows whose name contains this")
    parser.add_argument("--bounds", default=",".join(map(str, BOUNDS)))
    args = parser.parse_args()
    bounds = tuple(int(k) for k in args.bounds.split(","))
    rows = load_rows()
    done = {(r["model"], r["max_crossing"]) for r in rows}
    for name in catalogue():
        if args.only not in name:
            continue
        for bound in bounds:
            if (name, bound) in done:
                continue
            rows.append(measure(name, bound))
            save_rows(rows)
            print(name, bound, rows[-1].get("error") or cell(rows[-1]), flush=True)
    order = list(catalogue())
    rows.sort(key=lambda r: (order.index(r["model"]), r["max_crossing"]))
    save_rows(rows)
    replace_between(ROOT / "docs" / "partition-rule.md", "encoder-decoders", table(rows, BOUNDS))


if __name__ == "__main__":
    main()
