"""Small models for the CPU study that timm has no name for.

timm's smallest VGG (``vgg11``, 133M parameters, 7.6 GFLOPs at 224 px) does not fit a
60-minute study on two CPU cores, so the VGG-style model is timm's own :class:`VGG` class
with VGG-11's layout at a quarter of the width and a 256-wide pre-logits MLP.
"""

from __future__ import annotations

from typing import Any

from torch import nn

VGG11_QUARTER = [16, "M", 32, "M", 64, 64, "M", 128, 128, "M", 128, 128, "M"]


def vgg11_quarter(**kwargs: Any) -> nn.Module:
    """VGG-11 with batch norm at 1/4 width (timm's ``VGG``), 3.3M parameters."""
    from timm.models.vgg import VGG

    kwargs.setdefault("mlp_ratio", 1 / 16)
    kwargs.setdefault("norm_layer", nn.BatchNorm2d)
    return VGG(VGG11_QUARTER, **kwargs)
