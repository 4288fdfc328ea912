"""The cost of recomputing BatchNorm statistics: reading each batch's statistics from the
BatchNorm's own forward (trainers.training.batchnorm.recompute_bn) against a second
reduction over the activations in double (the implementation before issue 25's speed-up),
side by side, alternating, one torch thread; and the same for only the first tenth of the
BatchNorms (a job tuning an early block), where the pass stops once they have all read.

    python bench/bn_recompute_speed.py [--model efficientnet_lite0] [--images 480] [--size 96]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainers.training.batchnorm import recompute_bn  # noqa: E402
from trainers.training.modeling import BATCH_NORMS  # noqa: E402


@torch.no_grad()
def second_reduction(model: nn.Module, inputs: Iterable[torch.Tensor]) -> None:
    """The reference: sum x and x² per channel in double in a pre-hook, then pool."""
    norms = [m for m in model.modules() if isinstance(m, BATCH_NORMS)]
    sums: dict[nn.Module, list[torch.Tensor | float]] = {}

    def gather(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0]
        dims = [0, *range(2, x.dim())]
        total = sums.setdefault(module, [0.0, 0.0, 0.0])
        total[0] = total[0] + x.sum(dims, dtype=torch.float64)
        total[1] = total[1] + x.square().sum(dims, dtype=torch.float64)
        total[2] = float(total[2]) + x.numel() / x.shape[1]

    handles = [m.register_forward_pre_hook(gather) for m in norms]
    model.train()
    for x in inputs:
        model(x)
    for handle in handles:
        handle.remove()
    for norm, (total, squares, count) in sums.items():
        n = float(count)
        mean = torch.as_tensor(total) / n
        norm.running_mean.copy_(mean)
        norm.running_var.copy_((torch.as_tensor(squares) - n * mean * mean) / (n - 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--images", type=int, default=480)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import timm

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = timm.create_model(args.model).eval()
    images = torch.randn(args.images, 3, args.size, args.size)
    batches = list(images.split(128))
    forward, ours, reference, early = [], [], [], []

    def first_tenth(m: nn.Module) -> list[nn.Module]:
        norms = [n for n in m.modules() if isinstance(n, BATCH_NORMS)]
        return norms[: max(1, len(norms) // 10)]

    for _ in range(args.repeats):
        for times, run in (
            (forward, lambda m: [m(x) for x in batches]),
            (ours, lambda m: recompute_bn(m, batches)),
            (reference, lambda m: second_reduction(m, batches)),
            (early, lambda m: recompute_bn(m, batches, first_tenth(m))),
        ):
            copy_ = copy.deepcopy(model)
            began = time.perf_counter()
            with torch.no_grad():
                run(copy_)
            times.append(time.perf_counter() - began)
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    recompute_bn(a, batches)
    second_reduction(b, batches)
    gap = max(
        float(((x.running_var - y.running_var).abs() / y.running_var.abs().clamp_min(1e-6)).max())
        for x, y in zip(a.modules(), b.modules(), strict=True)
        if isinstance(x, BATCH_NORMS)
    )
    f, o, r, e = (statistics.median(t) for t in (forward, ours, reference, early))
    print(
        f"{args.model}, {args.images} images at {args.size} px, batches of 128, 1 thread, "
        f"median of {args.repeats}: eval forward {f:.2f} s; recompute_bn {o:.2f} s; "
        f"second reduction {r:.2f} s ({r / o:.2f}x ours); largest relative difference of "
        f"a running variance {gap:.1e}; the first tenth of the BatchNorms alone {e:.2f} s "
        f"({e / f:.0%} of the forward pass)"
    )


if __name__ == "__main__":
    main()
