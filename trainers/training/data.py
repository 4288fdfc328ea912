"""Image data: find it, split it (seeded, stratified, saved), decode it once, batch it.

Sources: an ImageFolder directory (one subfolder per class), a directory that already
has ``train/``, ``val/`` (and optionally ``test/``) ImageFolders, or a CSV of
``path,label`` (paths relative to the CSV). The split is written to the run folder as
``split.json`` and reused by every later run there. Images are decoded once, resized
to the model's input size, and kept as uint8 tensors; scaling, normalization and
augmentation happen per batch.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from graphblocks import GraphblocksError, write_atomic

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
)
SPLITS = ("train", "val", "test")


class DataError(GraphblocksError):
    """Training data that cannot be used."""


@dataclass
class DataSplit:
    """Paths (relative to ``root``) and labels of each split, and the class names."""

    root: str
    classes: list[str]
    parts: dict[str, list[tuple[str, int]]]
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return (
            json.dumps(
                {
                    "root": self.root,
                    "classes": self.classes,
                    "skipped": self.skipped,
                    **{k: [list(x) for x in v] for k, v in self.parts.items()},
                },
                indent=1,
            )
            + "\n"
        )

    @classmethod
    def from_json(cls, text: str) -> DataSplit:
        data = json.loads(text)
        parts = {k: [(str(p), int(y)) for p, y in data[k]] for k in SPLITS}
        return cls(data["root"], list(data["classes"]), parts, list(data.get("skipped", [])))


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )


def _image_folder(root: Path, base: Path) -> tuple[list[str], list[tuple[str, int]]]:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    samples: list[tuple[str, int]] = []
    for label, name in enumerate(classes):
        images = _images_in(root / name)
        if not images:
            raise DataError(
                f"class folder {name!r} in {str(root)!r} has no images",
                "add images or remove the folder",
            )
        samples += [(str(p.relative_to(base)), label) for p in images]
    return classes, samples


def _from_csv(path: Path) -> tuple[list[str], list[tuple[str, int]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.reader(handle) if r]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    if any(len(r) < 2 for r in rows):
        raise DataError(f"{path.name} has rows without a label", "write one 'path,label' per line")
    classes = sorted({r[1].strip() for r in rows})
    index = {c: i for i, c in enumerate(classes)}
    return classes, [(r[0].strip(), index[r[1].strip()]) for r in rows]


def _check_classes(classes: Sequence[str], samples: Sequence[tuple[str, int]], where: str) -> None:
    if not samples:
        raise DataError(
            f"no images found in {where}",
            f"give a folder with one subfolder of images per class ({', '.join(sorted(IMAGE_SUFFIXES))})",
        )
    if len(classes) < 2:
        raise DataError(
            f"{where} has a single class ({classes[0]!r})",
            "classification needs at least two classes",
        )


def stratified_split(
    samples: Sequence[tuple[str, int]], shares: Sequence[float], seed: int
) -> list[list[tuple[str, int]]]:
    """Per class, shuffle with ``seed`` and cut by ``shares``; every class keeps at
    least one training sample."""
    rng = random.Random(seed)
    by_class: dict[int, list[tuple[str, int]]] = {}
    for sample in samples:
        by_class.setdefault(sample[1], []).append(sample)
    parts: list[list[tuple[str, int]]] = [[] for _ in shares]
    for label in sorted(by_class):
        items = sorted(by_class[label])
        rng.shuffle(items)
        cuts, total = [], 0.0
        for share in shares[:-1]:
            total += share
            cuts.append(round(total * len(items)))
        cuts = [max(1, cuts[0]), *cuts[1:]] if items else cuts
        bounds = [0, *cuts, len(items)]
        for i in range(len(shares)):
            parts[i] += items[bounds[i] : max(bounds[i], bounds[i + 1])]
    return parts


def subsample(samples: Sequence[tuple[str, int]], rate: float, seed: int) -> list[tuple[str, int]]:
    """A stratified share ``rate`` of ``samples`` (at least one per class), order kept."""
    if rate >= 1:
        return list(samples)
    kept = stratified_split(samples, [rate, 1 - rate], seed)[0]
    keep = set(kept)
    return [s for s in samples if s in keep]


def make_split(data: str | Path, shares: Sequence[float], seed: int) -> DataSplit:
    """Find the data and split it (a pre-split folder keeps its own parts)."""
    path = Path(data)
    if not path.exists():
        raise DataError(f"no such data folder or file {str(path)!r}", "check --data")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise DataError(
                f"{path.name} is not a folder or a .csv file",
                "give an image folder or a CSV of path,label",
            )
        classes, samples = _from_csv(path)
        _check_classes(classes, samples, str(path))
        cut = stratified_split(samples, shares, seed)
        return DataSplit(str(path.parent.resolve()), classes, dict(zip(SPLITS, cut, strict=True)))
    if (path / "train").is_dir() and (path / "val").is_dir():
        classes, train = _image_folder(path / "train", path)
        _check_classes(classes, train, str(path / "train"))
        parts: dict[str, list[tuple[str, int]]] = {"train": train}
        for name in ("val", "test"):
            if (path / name).is_dir():
                other, samples = _image_folder(path / name, path)
                index = {c: i for i, c in enumerate(classes)}
                if set(other) - set(classes):
                    raise DataError(
                        f"{name}/ has classes not in train/: {sorted(set(other) - set(classes))}",
                        "use the same class folders",
                    )
                parts[name] = [(p, index[other[y]]) for p, y in samples]
            else:
                parts[name] = []
        return DataSplit(str(path.resolve()), classes, parts)
    classes, samples = _image_folder(path, path) if path.is_dir() else ([], [])
    _check_classes(classes, samples, str(path))
    parts_list = stratified_split(samples, shares, seed)
    return DataSplit(str(path.resolve()), classes, dict(zip(SPLITS, parts_list, strict=True)))


def load_or_make_split(
    saved: Path, data: str | Path, shares: Sequence[float], seed: int
) -> DataSplit:
    """The split saved at ``saved`` (a run folder's ``split.json``), or a new one saved there."""
    if saved.exists():
        return DataSplit.from_json(saved.read_text())
    split = make_split(data, shares, seed)
    write_atomic(saved, split.to_json())
    return split


def decode_images(
    split: DataSplit,
    part: str,
    size: Sequence[int],
    *,
    strict: bool,
    samples: Sequence[tuple[str, int]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``(images uint8 [N, C, H, W], labels, unreadable paths)`` of one part, resized."""
    from PIL import Image

    channels, height, width = (int(s) for s in size)
    images, labels, skipped = [], [], []
    for rel, label in split.parts[part] if samples is None else samples:
        try:
            with Image.open(Path(split.root) / rel) as raw:
                mode = "RGB" if channels == 3 else "L"
                img = raw.convert(mode).resize((width, height), Image.Resampling.BILINEAR)
                array = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        except Exception as exc:
            if strict:
                raise DataError(
                    f"cannot read image {rel!r} ({type(exc).__name__})",
                    "fix or remove it, or run without --strict",
                ) from exc
            skipped.append(rel)
            continue
        images.append(array.view(height, width, channels).permute(2, 0, 1))
        labels.append(label)
    if not images:
        return (
            torch.zeros((0, channels, height, width), dtype=torch.uint8),
            torch.zeros(0, dtype=torch.long),
            skipped,
        )
    return torch.stack(images), torch.tensor(labels), skipped


@dataclass
class Preprocess:
    """uint8 → float: scale to [0, 1], then ``(x - mean) / std`` when given."""

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    augment: bool = False

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator | None = None, *, train: bool = True
    ) -> torch.Tensor:
        """Float inputs; augmented only for training batches (``train``)."""
        x = images.float().div_(255)
        if self.augment and train:
            x = augment_batch(x, generator)
        if self.mean is not None and self.std is not None:
            mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
            x = (x - mean) / std
        return x


def augment_batch(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random horizontal flip and a random shift of up to 1/8 of the size (reflect pad)."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(-1), x)
    ph, pw = max(1, h // 8), max(1, w // 8)
    padded = torch.nn.functional.pad(x, (pw, pw, ph, ph), mode="reflect")
    dy = int(torch.randint(0, 2 * ph + 1, (1,), generator=generator))
    dx = int(torch.randint(0, 2 * pw + 1, (1,), generator=generator))
    return padded[:, :, dy : dy + h, dx : dx + w]


def batches(
    count: int, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None
) -> Iterator[torch.Tensor]:
    """Index batches over ``count`` items (shuffled with ``generator`` when asked)."""
    order = torch.randperm(count, generator=generator) if shuffle else torch.arange(count)
    for start in range(0, count, batch_size):
        yield order[start : start + batch_size]
