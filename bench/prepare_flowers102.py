"""Lay out Oxford Flowers 102 as an ImageFolder for ``graphblocks-train``.

Flowers 102 ships flat ``jpg/image_NNNNN.jpg`` files and ``imagelabels.mat`` (labels
1..102, in file order). This links (or copies) each image into ``OUT/class_KKK/``.

    python bench/prepare_flowers102.py FLOWERS_DIR data/flowers102
    python bench/prepare_flowers102.py FLOWERS_DIR data/flowers102 --download   # via torchvision

``FLOWERS_DIR`` holds ``jpg/`` and ``imagelabels.mat`` (torchvision puts them in
``ROOT/flowers-102``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path


def read_labels(mat_file: Path) -> list[int]:
    """The 1-based class of each image, in file-number order."""
    from scipy.io import loadmat

    return [int(v) for v in loadmat(str(mat_file))["labels"].ravel()]


def lay_out(flowers: Path, out: Path, *, copy: bool = False) -> int:
    """Link (or copy) ``flowers/jpg/image_NNNNN.jpg`` into ``out/class_KKK/``; the count."""
    labels = read_labels(flowers / "imagelabels.mat")
    count = 0
    for number, label in enumerate(labels, start=1):
        source = flowers / "jpg" / f"image_{number:05d}.jpg"
        if not source.exists():
            raise FileNotFoundError(f"{source} is missing: is {flowers} the unpacked data set?")
        folder = out / f"class_{label:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / source.name
        if target.exists() or target.is_symlink():
            target.unlink()
        if copy:
            shutil.copy2(source, target)
        else:
            os.symlink(source.resolve(), target)
        count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("flowers", type=Path, help="folder with jpg/ and imagelabels.mat")
    parser.add_argument("out", type=Path, help="ImageFolder to write")
    parser.add_argument("--copy", action="store_true", help="copy instead of symlinking")
    parser.add_argument(
        "--download", action="store_true", help="download into FLOWERS first (torchvision)"
    )
    args = parser.parse_args(argv)
    flowers = args.flowers
    if args.download:
        from torchvision.datasets import Flowers102

        Flowers102(str(flowers), download=True)
        flowers = flowers / "flowers-102"
    try:
        count = lay_out(flowers, args.out, copy=args.copy)
    except (OSError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{count} images in {len(list(args.out.iterdir()))} class folders under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
