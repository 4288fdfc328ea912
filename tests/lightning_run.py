"""A 2-epoch Lightning fit of the toy ResNet with graphblocks' callback, in one of its modes;
run in the test process, or as ``python -m tests.lightning_run MODE OUT [--ddp]`` (two CPU
processes with gloo), which saves each rank's final weights and BatchNorm statistics."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

import graphblocks
from graphblocks.integrations.lightning import BlockwiseFinetuning
from tests.toy_models import tiny_resnet

SIZE = (3, 24, 24)
#: the callback's settings per mode
MODES: dict[str, dict[str, Any]] = {
    "block": {"train": [1, "head"]},
    "gradual": {"train": ["head"], "unfreeze": {1: ["Q4"]}},
    "decay": {"train": ["Q3", "Q4", "head"], "layer_decay": 0.5},
}


class Classifier(pl.LightningModule):
    """The toy ResNet as ``self.model``, Adam over what trains when fitting starts."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.model = tiny_resnet().train()

    def training_step(self, batch: Any, index: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.cross_entropy(self.model(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=1e-2)


def partition() -> graphblocks.Partition:
    return graphblocks.analyze(tiny_resnet(), input_size=SIZE)


def fit(mode: str, ddp: bool = False) -> Classifier:
    """The module after 2 epochs of 8 batches with the callback of ``mode``."""
    generator = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(32, *SIZE, generator=generator), torch.arange(32) % 4)
    module = Classifier()
    callback = BlockwiseFinetuning(partition(), network="model", **MODES[mode])
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=2 if ddp else 1,
        strategy="ddp" if ddp else "auto",
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, DataLoader(data, batch_size=4))
    return module


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=sorted(MODES))
    parser.add_argument("out", type=Path)
    parser.add_argument("--ddp", action="store_true")
    args = parser.parse_args(argv)
    module = fit(args.mode, args.ddp)
    rank = module.trainer.global_rank
    state = {k: v.detach().clone() for k, v in module.model.state_dict().items()}
    torch.save(state, args.out / f"rank{rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1:])
