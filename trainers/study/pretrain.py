"""Pre-training on the generated source task, with checkpoints cached by content.

A checkpoint is the whole source model's ``state_dict`` (parameter names as the
partition has them, BN statistics included) as safetensors, named
``<model>-<hash>.safetensors`` where the hash covers the model, its arguments, the
source task and the input size (:meth:`StudyConfig.source_hash`); a JSON file beside it
records the source validation accuracy and the time it took. Committed checkpoints are
used before the study's cache: those in the folders of ``GRAPHBLOCKS_STUDY_CHECKPOINTS``
(separated by the path separator), then the checkout's ``fixtures/study/`` when the
package runs from a checkout of the repository (an installed wheel has none; the study
then says that it pre-trains, and where it looked).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from graphblocks import Partition, atomic_target, write_atomic
from trainers.training.data import augment_batch, batches, decode_images, make_split
from trainers.training.evaluation import dataset_score
from trainers.training.modeling import build_source_model

#: the repository checkout's committed checkpoints (absent from an installed package)
FIXTURE_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "study"
#: more folders of committed checkpoints, separated by ``os.pathsep``
FOLDERS_VARIABLE = "GRAPHBLOCKS_STUDY_CHECKPOINTS"


def committed_folders() -> list[Path]:
    """The folders of committed checkpoints that exist (see the module docstring)."""
    given = [Path(p) for p in os.environ.get(FOLDERS_VARIABLE, "").split(os.pathsep) if p]
    return [folder for folder in (*given, FIXTURE_DIR) if folder.is_dir()]


def checkpoint_name(key: str, digest: str) -> str:
    """The file name of a model's source checkpoint."""
    return f"{key}-{digest}.safetensors"


def find_checkpoint(name: str, cache_dir: Path) -> Path | None:
    """A committed or cached checkpoint of that name, or None."""
    for folder in (*committed_folders(), cache_dir):
        if (folder / name).exists():
            return folder / name
    return None


def _evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    def logits(index: torch.Tensor) -> torch.Tensor:
        return model(images[index].float().div_(255))

    return dataset_score(model, logits, labels, batch_size=256).accuracy


def pretrain(
    partition: Partition,
    source_dir: Path,
    target: Path,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    init: str = "model",
) -> dict[str, Any]:
    """Train the partition's model from scratch on the ImageFolder at ``source_dir``
    (90/10 split; AdamW, one-cycle schedule, flips and shifts) and save it at
    ``target``. ``init="torch"`` first resets every convolution and linear layer to
    PyTorch's default initialisation. Returns the record written beside it."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    size = partition.model.input_size
    split = make_split(source_dir, (0.9, 0.1, 0.0), seed)
    x_train, y_train, _ = decode_images(split, "train", size, strict=True)
    x_val, y_val, _ = decode_images(split, "val", size, strict=True)
    model = build_source_model(partition, pretrained=False)
    if init == "torch":
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.reset_parameters()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * math.ceil(len(y_train) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.15)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for index in batches(len(y_train), batch_size, shuffle=True, generator=generator):
            x = augment_batch(x_train[index].float().div_(255), generator)
            loss = nn.functional.cross_entropy(model(x), y_train[index], label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    record = {
        "model": partition.model.name,
        "model_args": partition.settings.get("model_args", {}),
        "source_classes": len(split.classes),
        "train_images": len(y_train),
        "epochs": epochs,
        "init": init,
        "source_val_acc": _evaluate(model, x_val, y_val),
        "seconds": round(time.perf_counter() - start, 1),
        "torch": torch.__version__,
    }
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with atomic_target(target) as tmp:
        save_file(state, str(tmp), metadata={"graphblocks.study": json.dumps(record)})
    write_atomic(target.with_suffix(".json"), json.dumps(record, indent=1) + "\n")
    return record
