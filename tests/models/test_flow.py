"""RealNVP, the flow of RLE."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from slimpose.models.flow import RealNVP

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _grid(lo: float = -8.0, hi: float = 8.0, step: float = 0.05) -> torch.Tensor:
    g = torch.arange(lo, hi + step / 2, step, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


@pytest.mark.parametrize("gain", [None, 1.0])
def test_flow_density_integrates_to_one(gain):
    torch.manual_seed(0)
    flow = RealNVP().double()
    if gain is not None:  # a flow far from the identity, so the check is not just N(0, I)
        for m in flow.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, gain=gain)
                nn.init.uniform_(m.bias, -0.3, 0.3)
    pts = _grid()
    with torch.no_grad():
        density = flow.log_prob(pts).exp()
    total = density.sum().item() * 0.05**2
    assert abs(total - 1.0) < 0.02, total
    if gain is not None:
        std_normal = torch.exp(-0.5 * (pts**2).sum(1)) / (2 * math.pi)
        assert (density - std_normal).abs().max() > 0.01


def test_flow_structure():
    flow = RealNVP()
    assert len(flow.s) == len(flow.t) == 6
    assert flow.mask.tolist() == [[0, 1], [1, 0]] * 3
    assert isinstance(flow.s[0][-1], nn.Tanh) and not isinstance(flow.t[0][-1], nn.Tanh)
    assert flow.log_prob(torch.zeros(5, 2)).shape == (5,)
