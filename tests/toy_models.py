"""Small hand-built networks, one per structural case the partition rule must handle.

Each factory takes no required argument and returns a module in eval mode, so the
file doubles as a ``path/to/file.py:factory`` model source in CLI tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


class VGGLike(nn.Module):
    """conv-bn-relu x2, pool, conv-relu, pool, then a global pool and a linear head."""

    def __init__(self, num_classes: int = 5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(3, 8), conv_bn_relu(8, 8), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class BasicUnit(nn.Module):
    """ResNet basic unit; ``inplace`` uses ``+=`` and ``relu_`` instead of ``+`` and ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, inplace: bool = False) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else None
        )
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.down is None else self.down(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.inplace:
            y += skip
            return y.relu_()
        return F.relu(y + skip)


class BottleneckUnit(nn.Module):
    """ResNet bottleneck unit with ``add_`` as the merge."""

    def __init__(self, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(cin, mid), nn.Conv2d(mid, mid, 3, padding=1), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, cout, 1), nn.BatchNorm2d(cout),
        )  # fmt: skip
        self.down = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x).add_(self.down(x)))


class TinyResNet(nn.Module):
    """Stem, two basic units, a bottleneck unit, head. Four residual-safe blocks + stem."""

    def __init__(self, inplace: bool = False, num_classes: int = 4) -> None:
        super().__init__()
        self.stem = conv_bn_relu(3, 8)
        self.unit1 = BasicUnit(8, 8, inplace=inplace)
        self.unit2 = BasicUnit(8, 16, stride=2, inplace=inplace)
        self.unit3 = BottleneckUnit(16, 8, 32)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.unit3(self.unit2(self.unit1(self.stem(x))))
        return self.fc(x.mean((2, 3)))


class MutatingUnit(nn.Module):
    """A residual unit that merges by mutation, never reassigning: ``y.add_(x); y.relu_()``."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        y.add_(x)
        y.relu_()
        return y


class MutatingNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn_relu(3, 8)
        self.unit1, self.unit2 = MutatingUnit(8), MutatingUnit(8)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.unit2(self.unit1(self.stem(x))).mean((2, 3)))


def tiny_resnet_inplace() -> TinyResNet:
    return TinyResNet(inplace=True)


class InvertedResidual(nn.Module):
    """MobileNetV2 unit: expand 1x1, depthwise 3x3, project 1x1; skip when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int = 4) -> None:
        super().__init__()
        mid = cin * expand
        self.use_skip = stride == 1 and cin == cout
        self.conv_pw = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6()
        )
        self.conv_dw = nn.Sequential(
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU6(),
        )
        self.conv_pwl = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_pwl(self.conv_dw(self.conv_pw(x)))
        return x + y if self.use_skip else y


class TinyMobileNetV2(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn_relu(3, 8, stride=2)
        self.ir_noskip = InvertedResidual(8, 12, stride=2)
        self.ir_skip = InvertedResidual(12, 12, stride=1)
        self.classifier = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ir_skip(self.ir_noskip(self.stem(x)))
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


class DenseBlock(nn.Module):
    """Each layer reads the concatenation of every earlier output."""

    def __init__(self, cin: int, growth: int, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.BatchNorm2d(cin + i * growth),
                nn.ReLU(),
                nn.Conv2d(cin + i * growth, growth, 3, padding=1),
            )
            for i in range(layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class TinyDenseNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn_relu(3, 8)
        self.dense = DenseBlock(8, 4, 3)
        self.transition = nn.Sequential(
            nn.BatchNorm2d(20), nn.ReLU(), nn.Conv2d(20, 8, 1), nn.AvgPool2d(2)
        )
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.transition(self.dense(self.stem(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class InceptionUnit(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.b1 = conv_bn_relu(cin, 4)
        self.b2 = nn.Sequential(conv_bn_relu(cin, 4), conv_bn_relu(4, 4))
        self.b3 = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(cin, 4, 1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x)], 1)


class TinyInception(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn_relu(3, 8)
        self.mixed1 = InceptionUnit(8)
        self.mixed2 = InceptionUnit(12)
        self.fc = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.mixed2(self.mixed1(self.stem(x))).mean((2, 3)))


class TinyUNet(nn.Module):
    """Two-level U-Net: the outer skip spans the whole encoder-decoder body."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = conv_bn_relu(3, 8)
        self.enc2 = conv_bn_relu(8, 16, stride=2)
        self.bottom = conv_bn_relu(16, 16)
        self.up2 = nn.ConvTranspose2d(16, 16, 2, 2)
        self.dec2 = conv_bn_relu(16, 8)
        self.dec1 = conv_bn_relu(16, 8)
        self.out = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        b = self.bottom(e2) + e2
        d2 = self.dec2(self.up2(b))
        return self.out(self.dec1(torch.cat([d2, e1], 1)))


class PreNormBlock(nn.Module):
    """x + attn(norm(x)), then x + mlp(norm(x)); attention written with matmuls."""

    def __init__(self, dim: int, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def attn(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = (
            self.qkv(x)
            .reshape(b, n, 3, self.heads, c // self.heads)
            .permute(2, 0, 3, 1, 4)
            .unbind(0)
        )
        weights = (q @ k.transpose(-2, -1) * (c // self.heads) ** -0.5).softmax(-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(b, n, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """Patch embedding, cls token, position embedding, two pre-norm blocks, cls head."""

    def __init__(self, dim: int = 16, depth: int = 2) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 8, 8)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, dim))
        self.blocks = nn.Sequential(*(PreNormBlock(dim) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


class TiedConvs(nn.Module):
    """Two convolutions sharing one weight tensor (weight tying)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(4, 4, 3, padding=1)
        self.conv_b = nn.Conv2d(4, 4, 3, padding=1)
        self.conv_b.weight = self.conv_a.weight
        self.stem = conv_bn_relu(3, 4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = F.relu(self.conv_a(x))
        x = F.relu(self.conv_b(x))
        return self.fc(x.mean((2, 3)))


class FunctionalParams(nn.Module):
    """Bare parameters used through functional calls: F.conv2d, F.linear, ``x @ w.t()``."""

    def __init__(self) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.randn(6, 3, 3, 3) * 0.1)
        self.scale = nn.Parameter(torch.ones(1, 6, 1, 1))
        self.w1 = nn.Parameter(torch.randn(8, 6) * 0.1)
        self.b1 = nn.Parameter(torch.zeros(8))
        self.w2 = nn.Parameter(torch.randn(3, 8) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.conv2d(x, self.kernel, padding=1) * self.scale)
        x = F.relu(F.linear(x.mean((2, 3)), self.w1, self.b1))
        return x @ self.w2.t()


class ShapeBranching(nn.Module):
    """Python control flow on a shape: torch.fx cannot trace it, torch.export can."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn_relu(3, 8)
        self.small = conv_bn_relu(8, 8)
        self.large = conv_bn_relu(8, 8, stride=2)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.large(x) if x.shape[-1] > 16 else self.small(x)
        return self.fc(x.mean((2, 3)))


class DataDependent(nn.Module):
    """Control flow on tensor values: no frontend can capture it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if x.sum() > 0:
            x = x * 2
        return self.fc(x.mean((2, 3)))


def vgg_like() -> VGGLike:
    return VGGLike().eval()


def not_a_module() -> str:
    return "not a model"


def failing_factory(width: int = 4) -> nn.Module:
    raise ValueError(f"width {width} is not supported")


def widened(width: int = 8) -> nn.Module:
    return nn.Sequential(
        conv_bn_relu(3, width), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 2)
    )


def shape_branching() -> ShapeBranching:
    return ShapeBranching()


def data_dependent() -> DataDependent:
    return DataDependent()


def sleeper() -> nn.Module:
    """Hangs: the zoo's time limit must kill its worker."""
    import time

    time.sleep(600)
    return vgg_like()


def crasher() -> nn.Module:
    """Takes its worker process down with it."""
    import os

    os._exit(3)


def memory_hog() -> nn.Module:
    """Asks for 6 GiB of real memory, past the zoo's per-worker cap in the tests."""
    torch.ones(6 * 2**30, dtype=torch.uint8, device="cpu")
    return vgg_like()


def tiny_resnet(num_classes: int = 4) -> TinyResNet:
    return TinyResNet(num_classes=num_classes)


class AffineScale(nn.Module):
    """``x * alpha + beta`` per channel: two tensors of one shape and no role names."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.alpha + self.beta


def two_scales() -> nn.Module:
    """A conv, an :class:`AffineScale`, a global pool and a linear head."""
    return nn.Sequential(
        conv_bn_relu(3, 8), AffineScale(8), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)
    ).eval()


class TwoInputCell(nn.Module):
    """A NASNet-style cell: it reads the two previous cells' outputs, adds branches across
    them and concatenates its adjusted earlier input with what it computed (one branch
    from each input, as NASNet's ``comb_iter`` sums)."""

    def __init__(self, c_prev: int, c_cur: int, c: int) -> None:
        super().__init__()
        self.adjust_prev = conv_bn_relu(c_prev, c)
        self.adjust_cur = conv_bn_relu(c_cur, c)
        self.left = conv_bn_relu(c, c)
        self.right = conv_bn_relu(c, c)

    def forward(self, prev: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        p, x = self.adjust_prev(prev), self.adjust_cur(cur)
        a = self.left(x) + p
        b = self.right(x) + x
        return torch.cat([p, a, b], 1)


class TwoInputCellNet(nn.Module):
    """A classifier of six two-input cells: two tensors cross between any two cells."""

    #: the cell, and how many times its width it outputs
    cell: type[TwoInputCell] = TwoInputCell
    widening = 3

    def __init__(self, width: int = 8, cells: int = 6, num_classes: int = 5) -> None:
        super().__init__()
        self.stem = conv_bn_relu(3, width)
        chans = [width, width]
        self.cells = nn.ModuleList()
        for _ in range(cells):
            self.cells.append(self.cell(chans[-2], chans[-1], width))
            chans.append(self.widening * width)
        self.fc = nn.Linear(self.widening * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prev = cur = self.stem(x)
        for cell in self.cells:
            prev, cur = cur, cell(prev, cur)
        return self.fc(cur.mean((2, 3)))


class ResUnit(nn.Module):
    """``relu(x + bn(conv(relu(bn(conv(x))))))``."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(c, c), nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class ResUNet(nn.Module):
    """A three-level U-Net: residual units in the encoder, concatenating skips into plain
    convolutions in the decoder, a 1x1 segmentation head."""

    def __init__(self, c: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.stem = conv_bn_relu(3, c)
        self.enc1 = nn.Sequential(ResUnit(c), ResUnit(c))
        self.down2 = conv_bn_relu(c, 2 * c, stride=2)
        self.enc2 = nn.Sequential(ResUnit(2 * c), ResUnit(2 * c))
        self.down3 = conv_bn_relu(2 * c, 4 * c, stride=2)
        self.enc3 = nn.Sequential(ResUnit(4 * c), ResUnit(4 * c), ResUnit(4 * c))
        self.up3 = nn.ConvTranspose2d(4 * c, 2 * c, 2, 2)
        self.dec2 = nn.Sequential(conv_bn_relu(4 * c, 2 * c), conv_bn_relu(2 * c, 2 * c))
        self.up2 = nn.ConvTranspose2d(2 * c, c, 2, 2)
        self.dec1 = nn.Sequential(conv_bn_relu(2 * c, c), conv_bn_relu(c, c))
        self.head = nn.Conv2d(c, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(self.stem(x))
        e2 = self.enc2(self.down2(e1))
        bottom = self.enc3(self.down3(e2))
        d2 = self.dec2(torch.cat([self.up3(bottom), e2], 1))
        d1 = self.dec1(torch.cat([self.up2(d2), e1], 1))
        return self.head(d1)


class FPNClassifier(nn.Module):
    """A residual backbone of three stages whose outputs feed an FPN (lateral 1x1 convs,
    top-down sums) and a classifier over the pooled pyramid levels."""

    def __init__(self, c: int = 8, num_classes: int = 4) -> None:
        super().__init__()
        self.stem = conv_bn_relu(3, c)
        self.stage1 = nn.Sequential(ResUnit(c), ResUnit(c))
        self.stage2 = nn.Sequential(
            conv_bn_relu(c, 2 * c, stride=2), ResUnit(2 * c), ResUnit(2 * c)
        )
        self.stage3 = nn.Sequential(
            conv_bn_relu(2 * c, 4 * c, stride=2), ResUnit(4 * c), ResUnit(4 * c)
        )
        self.lateral = nn.ModuleList([nn.Conv2d(k * c, c, 1) for k in (1, 2, 4)])
        self.smooth = nn.ModuleList([conv_bn_relu(c, c) for _ in range(3)])
        self.fc = nn.Linear(3 * c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1 = self.stage1(self.stem(x))
        c2 = self.stage2(c1)
        c3 = self.stage3(c2)
        p3 = self.lateral[2](c3)
        p2 = self.lateral[1](c2) + nn.functional.interpolate(p3, scale_factor=2.0)
        p1 = self.lateral[0](c1) + nn.functional.interpolate(p2, scale_factor=2.0)
        pooled = [s(p).mean((2, 3)) for s, p in zip(self.smooth, (p1, p2, p3), strict=True)]
        return self.fc(torch.cat(pooled, 1))


def two_input_cells(num_classes: int = 5) -> TwoInputCellNet:
    return TwoInputCellNet(num_classes=num_classes)


def double_conv(cin: int, cout: int) -> nn.Sequential:
    """Two conv-bn-relu layers, the plain stage of Ronneberger's U-Net."""
    return nn.Sequential(conv_bn_relu(cin, cout), conv_bn_relu(cout, cout))


class PlainUNet(nn.Module):
    """Ronneberger's U-Net in small: plain stages of two conv-bn-relu layers, max-pooling,
    transposed convolutions and concatenated skips, with no residual unit anywhere."""

    def __init__(self, c: int = 4, depth: int = 4, classes: int = 2) -> None:
        super().__init__()
        widths = [c * 2**k for k in range(depth + 1)]
        self.down = nn.ModuleList(
            [double_conv(3, c)]
            + [double_conv(widths[k - 1], widths[k]) for k in range(1, depth + 1)]
        )
        levels = list(reversed(range(depth)))
        self.up = nn.ModuleList(
            [nn.ConvTranspose2d(widths[k + 1], widths[k], 2, 2) for k in levels]
        )
        self.dec = nn.ModuleList([double_conv(2 * widths[k], widths[k]) for k in levels])
        self.head = nn.Conv2d(c, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for k, stage in enumerate(self.down):
            x = stage(F.max_pool2d(x, 2) if k else x)
            skips.append(x)
        skips.pop()
        for up, dec in zip(self.up, self.dec, strict=True):
            x = dec(torch.cat([skips.pop(), up(x)], 1))
        return self.head(x)


class PlainMultiScale(nn.Module):
    """A classifier of plain stages (two conv-bn-relu layers, then max-pooling) whose head
    pools every stage's output and classifies their concatenation."""

    def __init__(self, widths: tuple[int, ...] = (8, 16, 24, 32), num_classes: int = 4) -> None:
        super().__init__()
        chans = (3, *widths)
        self.stages = nn.ModuleList(double_conv(a, b) for a, b in zip(chans, widths, strict=False))
        self.fc = nn.Linear(sum(widths), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        taps = []
        for k, stage in enumerate(self.stages):
            x = stage(F.max_pool2d(x, 2) if k else x)
            taps.append(x)
        return self.fc(torch.cat([t.mean((2, 3)) for t in taps], 1))


class SumCell(TwoInputCell):
    """A NASNet-style cell that reads the two previous cells' outputs and **adds** its
    branches: ``(left(x) + p) + (right(p) + x)`` over the adjusted inputs p and x."""

    def forward(self, prev: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        p, x = self.adjust_prev(prev), self.adjust_cur(cur)
        return (self.left(x) + p) + (self.right(p) + x)


class SumCellNet(TwoInputCellNet):
    """A classifier of eight two-input cells that sum their branches (:class:`SumCell`)."""

    cell = SumCell
    widening = 1

    def __init__(self, width: int = 8, cells: int = 8, num_classes: int = 5) -> None:
        super().__init__(width, cells, num_classes)


class DeepUNet(nn.Module):
    """A U-Net of depth 5 shaped like segmentation-models-pytorch's default ``Unet``: a
    residual encoder (a strided stem, max-pooling, four stages of residual units), four
    concatenated skips at 1/2 to 1/16, five upsampling decoder stages."""

    def __init__(self, c: int = 4, classes: int = 2) -> None:
        super().__init__()
        widths = [c, c, 2 * c, 4 * c, 8 * c]
        self.stem = conv_bn_relu(3, c, stride=2)
        self.stages = nn.ModuleList()
        for k in range(1, 5):
            down = [] if k == 1 else [conv_bn_relu(widths[k - 1], widths[k], stride=2)]
            self.stages.append(nn.Sequential(*down, ResUnit(widths[k]), ResUnit(widths[k])))
        skips = [widths[3], widths[2], widths[1], widths[0], 0]
        outs = [8 * c, 4 * c, 2 * c, c, c]
        ins = [widths[4], *outs[:-1]]
        self.dec = nn.ModuleList(
            double_conv(i + s, o) for i, s, o in zip(ins, skips, outs, strict=True)
        )
        self.head = nn.Conv2d(c, classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        skips = [x]
        x = F.max_pool2d(x, 2)
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        skips = skips[:-1]
        for dec in self.dec:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = dec(torch.cat([x, skips.pop()], 1) if skips else x)
        return self.head(x)


def plain_multi_scale(num_classes: int = 4) -> PlainMultiScale:
    return PlainMultiScale(num_classes=num_classes)
