"""Small image folders made on the fly: each class a colour and a stripe direction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = [(220, 40, 40), (40, 180, 60), (50, 70, 220), (200, 200, 40)]


def make_image_folder(
    root: Path, classes: int = 3, per_class: int = 10, size: int = 24, seed: int = 0
) -> Path:
    """``root/class_k/img_i.png``: learnable in a few epochs, noisy enough not to be trivial."""
    rng = np.random.default_rng(seed)
    for k in range(classes):
        folder = root / f"class_{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 60, (size, size, 3)).astype(np.float32)
            image += np.array(COLOURS[k % len(COLOURS)], dtype=np.float32) * 0.7
            if k % 2:
                image[:, ::4] = 255
            else:
                image[::4, :] = 255
            Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(folder / f"img_{i}.png")
    return root
