"""Property tests: random residual networks always give a valid, deterministic partition."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from graphblocks.pipeline import Settings, analyze_model
from tests.conftest import check_invariants

UNITS = ("conv", "residual", "branches", "pool", "dense", "prenorm")


class RandomNet(nn.Module):
    """A stack of randomly chosen units on an 8-channel 16x16 feature map."""

    def __init__(self, units: list[str], width: int) -> None:
        super().__init__()
        self.units = units
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.ModuleList(self._make(u, width) for u in units)
        self.fc = nn.Linear(width, 3)

    @staticmethod
    def _make(unit: str, c: int) -> nn.Module:
        conv = lambda: nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())  # noqa: E731
        if unit == "conv":
            return conv()
        if unit in ("residual", "branches"):
            return nn.ModuleList([conv(), conv()])
        if unit == "dense":
            return nn.ModuleList([conv(), nn.Conv2d(2 * c, c, 1)])
        if unit == "prenorm":
            return nn.ModuleList([nn.GroupNorm(1, c), nn.Conv2d(c, c, 1)])
        return nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for unit, module in zip(self.units, self.body, strict=True):
            if unit == "conv":
                x = module(x)
            elif unit == "residual":
                x = F.relu(x + module[1](module[0](x)))
            elif unit == "branches":
                x = module[0](x) + module[1](x)
            elif unit == "dense":
                x = module[1](torch.cat([x, module[0](x)], 1))
            elif unit == "prenorm":
                x = x + module[1](module[0](x))
            else:
                x = F.max_pool2d(x, 3, 1, 1)
        return self.fc(x.mean((2, 3)))


nets = st.tuples(st.lists(st.sampled_from(UNITS), min_size=1, max_size=8), st.sampled_from([2, 4]))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    nets,
    st.sets(st.sampled_from(("pool", "norm", "act", "merge")), min_size=1),
    st.none() | st.integers(1, 6),
)
def test_random_residual_nets(spec, delimiters, max_blocks):
    units, width = spec
    model = RandomNet(units, width).eval()
    config = Settings(
        delimiters=tuple(sorted(delimiters)), max_blocks=max_blocks, input_size=(3, 8, 8)
    )
    first = analyze_model(model, config)
    check_invariants(first)
    if max_blocks is not None:
        assert first.partition.num_blocks <= max_blocks
    again = analyze_model(RandomNet(units, width).eval(), config)
    assert again.partition.to_json() == first.partition.to_json()
