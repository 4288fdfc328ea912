"""The study's image sets, written as ImageFolder directories of PNG files.

* ``source``: the pre-training task. 16 classes = 8 shapes (circle, square, triangle,
  cross, ring, star, hexagon, crescent) × 2 fills (solid, striped), in a random colour,
  size, place and rotation, on a random colour gradient with pixel noise; drawn at 4x and
  downsampled (anti-aliased).
* ``digits``: scikit-learn's bundled handwritten digits (1,797 8×8 images, 10 classes),
  upsampled bilinearly to the input size, grey → RGB; ``per_class`` per class.
* ``photos``: patches of scikit-image's bundled photographs; the class is the photograph
  (12 classes). A patch is a random square of 15-35% of the photograph's shorter side.
* ``faces``: scikit-image's ``lfw_subset`` (100 faces from Labeled Faces in the Wild and
  100 non-face patches, 25×25 grey), upsampled bilinearly; 2 classes, ``per_class`` ≤ 100.
* ``shifted``: a stronger domain shift from the source: no shapes and no colour, only
  oriented sinusoidal gratings (4 orientations × 2 frequencies = 8 classes) with a random
  phase, contrast and heavy pixel noise.

Every set is a pure function of (kind, per_class, size, seed); a ``dataset.json`` stamp
makes a rebuild happen only when one of them changes, and the folder is replaced whole.
"""

from __future__ import annotations

import importlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from trainers.training.data import DataError

Sample = tuple[str, Image.Image]  # (class name, image)
Generator = Callable[[int, int, np.random.Generator], Iterator[Sample]]

SHAPES = ("circle", "square", "triangle", "cross", "ring", "star", "hexagon", "crescent")
PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "chelsea",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "rocket",
)
VERSION = 2


def _require(module: str, package: str) -> Any:
    """``module``, or a one-line error that names the package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DataError(
            f"the study's targets need {package}, which is not installed",
            "pip install 'graphblocks[study]'",
        ) from exc


def _gradient(size: int, rng: np.random.Generator) -> np.ndarray:
    """A random two-colour linear gradient with pixel noise, float in [0, 255]."""
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    t = (np.cos(angle) * xx + np.sin(angle) * yy + 1.5) / 3
    image = a * (1 - t[..., None]) + b * t[..., None]
    return image + rng.normal(0, 6, image.shape)


def _polygon(
    cx: float, cy: float, r: float, corners: int, turn: float, inner: float = 1.0
) -> list[tuple[float, float]]:
    """Corners of a regular polygon (a star when ``inner`` < 1)."""
    points = []
    steps = corners * (2 if inner < 1 else 1)
    for k in range(steps):
        radius = r * (inner if inner < 1 and k % 2 else 1.0)
        angle = turn + 2 * np.pi * k / steps
        points.append((cx + radius * np.cos(angle), cy + radius * np.sin(angle)))
    return points


def _draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    cx: float,
    cy: float,
    r: float,
    turn: float,
    colour: int,
    background: int,
) -> None:
    """Draw ``shape`` (centre, radius, rotation) on a one-channel mask."""
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "ring":
        draw.ellipse(box, fill=colour)
        draw.ellipse((cx - r / 2, cy - r / 2, cx + r / 2, cy + r / 2), fill=background)
    elif shape == "crescent":
        draw.ellipse(box, fill=colour)
        dx, dy = 0.55 * r * np.cos(turn), 0.55 * r * np.sin(turn)
        draw.ellipse((cx - r + dx, cy - r + dy, cx + r + dx, cy + r + dy), fill=background)
    elif shape == "cross":
        for angle in (turn, turn + np.pi / 2):
            c, s, w = np.cos(angle), np.sin(angle), r / 3.5
            draw.polygon(
                [
                    (cx + c * r - s * w, cy + s * r + c * w),
                    (cx + c * r + s * w, cy + s * r - c * w),
                    (cx - c * r + s * w, cy - s * r - c * w),
                    (cx - c * r - s * w, cy - s * r + c * w),
                ],
                fill=colour,
            )
    else:
        corners, inner = {
            "square": (4, 1.0),
            "triangle": (3, 1.0),
            "hexagon": (6, 1.0),
            "star": (5, 0.45),
        }[shape]
        draw.polygon(_polygon(cx, cy, r, corners, turn, inner), fill=colour)


def source_samples(per_class: int, size: int, rng: np.random.Generator) -> Iterator[Sample]:
    """The source task (see the module docstring)."""
    scale = 4
    big = size * scale
    for shape in SHAPES:
        for fill in ("solid", "striped"):
            for _ in range(per_class):
                background = np.clip(_gradient(big, rng), 0, 255).astype(np.uint8)
                canvas = Image.fromarray(background)
                mask = Image.new("L", (big, big), 0)
                r = rng.uniform(0.28, 0.45) * big
                cx, cy = rng.uniform(r, big - r, 2) if big - r > r else (big / 2, big / 2)
                _draw_shape(
                    ImageDraw.Draw(mask), shape, cx, cy, r, rng.uniform(0, 2 * np.pi), 255, 0
                )
                colour = (255 - background.reshape(-1, 3).mean(0) + rng.uniform(-40, 40, 3)) % 256
                layer = np.broadcast_to(colour, background.shape).copy()
                if fill == "striped":
                    period = rng.uniform(0.12, 0.2) * big
                    angle = rng.uniform(0, np.pi)
                    yy, xx = np.mgrid[0:big, 0:big]
                    stripes = (
                        np.sin(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) / period) > 0
                    )
                    layer[stripes] = 255 - colour
                shape_image = Image.fromarray(layer.astype(np.uint8))
                canvas.paste(shape_image, (0, 0), mask)
                yield f"{shape}_{fill}", canvas.resize((size, size), Image.Resampling.LANCZOS)


def digits_samples(per_class: int, size: int, rng: np.random.Generator) -> Iterator[Sample]:
    """scikit-learn's digits, ``per_class`` of each (drawn with ``rng``)."""
    load_digits = _require("sklearn.datasets", "scikit-learn").load_digits
    digits = load_digits()
    for label in range(10):
        indices = np.flatnonzero(digits.target == label)
        chosen = rng.permutation(indices)[:per_class]
        for i in sorted(chosen):
            pixels = (digits.images[i] * (255 / 16)).astype(np.uint8)
            image = Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR)
            yield f"digit_{label}", image.convert("RGB")


def _photo(name: str) -> Image.Image:
    array = getattr(_require("skimage.data", "scikit-image"), name)()
    image = Image.fromarray(array)
    return image.convert("RGB")


def photo_samples(per_class: int, size: int, rng: np.random.Generator) -> Iterator[Sample]:
    """Random square patches of scikit-image's sample photographs; class = photograph."""
    for name in PHOTOS:
        photo = _photo(name)
        width, height = photo.size
        for _ in range(per_class):
            side = int(rng.uniform(0.15, 0.35) * min(width, height))
            left = int(rng.integers(0, width - side + 1))
            top = int(rng.integers(0, height - side + 1))
            patch = photo.crop((left, top, left + side, top + side))
            yield name, patch.resize((size, size), Image.Resampling.BILINEAR)


def shifted_samples(per_class: int, size: int, rng: np.random.Generator) -> Iterator[Sample]:
    """Noisy grey gratings: 4 orientations × 2 frequencies (see the module docstring)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    for degrees in (0, 45, 90, 135):
        for cycles in (3, 7):
            for _ in range(per_class):
                angle = np.deg2rad(degrees + rng.uniform(-8, 8))
                frequency = cycles * rng.uniform(0.9, 1.1) / size
                phase = rng.uniform(0, 2 * np.pi)
                wave = np.sin(
                    2 * np.pi * frequency * (np.cos(angle) * xx + np.sin(angle) * yy) + phase
                )
                grey = 128 + rng.uniform(20, 90) * wave + rng.normal(0, 45, wave.shape)
                pixels = np.clip(grey, 0, 255).astype(np.uint8)
                yield f"grating_{degrees:03d}_{cycles}c", Image.fromarray(pixels).convert("RGB")


def faces_samples(per_class: int, size: int, rng: np.random.Generator) -> Iterator[Sample]:
    """scikit-image's ``lfw_subset``: faces (its first 100) against non-faces (its last 100)."""
    images = _require("skimage.data", "scikit-image").lfw_subset()
    half = len(images) // 2
    for label, indices in (("face", range(half)), ("not_face", range(half, len(images)))):
        for i in sorted(rng.permutation(np.array(indices))[:per_class]):
            pixels = (np.clip(images[i], 0, 1) * 255).astype(np.uint8)
            image = Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR)
            yield label, image.convert("RGB")


GENERATORS: dict[str, Generator] = {
    "source": source_samples,
    "digits": digits_samples,
    "photos": photo_samples,
    "shifted": shifted_samples,
    "faces": faces_samples,
}


def materialize(kind: str, root: Path, *, per_class: int, size: int, seed: int) -> Path:
    """The ImageFolder of ``kind`` at ``root``, built unless its stamp matches."""
    stamp = {"kind": kind, "per_class": per_class, "size": size, "seed": seed, "version": VERSION}
    stamp_path = root / "dataset.json"
    if stamp_path.exists() and json.loads(stamp_path.read_text()) == stamp:
        return root
    building = root.with_name(root.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    counts: dict[str, int] = {}
    for label, image in GENERATORS[kind](per_class, size, np.random.default_rng(seed)):
        folder = building / label
        folder.mkdir(parents=True, exist_ok=True)
        index = counts[label] = counts.get(label, 0) + 1
        image.save(folder / f"{index:05d}.png")
    (building / "dataset.json").write_text(json.dumps(stamp) + "\n")
    shutil.rmtree(root, ignore_errors=True)
    building.rename(root)
    return root
