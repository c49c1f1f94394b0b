"""Attention and context modules (models/attention.py): shapes, the ECA kernel rule, and
what each module does at initialisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from slimpose.models.attention import (
    CBAM,
    DenseAtrousPyramid,
    EfficientChannelAttention,
    PositionAttention,
    SqueezeExcitation,
    eca_kernel_size,
)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def _positive_input(c: int = 32, h: int = 8, w: int = 6) -> torch.Tensor:
    return torch.rand(2, c, h, w) + 0.1


@pytest.mark.parametrize("channels, kernel", [(16, 3), (32, 3), (64, 3), (128, 5), (256, 5), (512, 5), (1024, 5),
                                              (4096, 7)])
def test_eca_kernel_size_rule(channels, kernel):
    # |log2(C)/2 + 1/2| truncated, then made odd: C=128 → 4 → 5, C=64 → 3.5 → 3
    assert eca_kernel_size(channels) == kernel
    assert EfficientChannelAttention(channels).conv.kernel_size == (kernel,)


@pytest.mark.parametrize("gate", ["sigmoid", "hardsigmoid"])
def test_eca_gates_each_channel_within_range(gate):
    x = _positive_input()
    eca = EfficientChannelAttention(32, gate=gate)
    y = eca(x)
    ratio = y / x
    assert y.shape == x.shape
    assert torch.all((ratio >= 0) & (ratio <= 1))
    # one weight per (sample, channel): constant over the spatial positions
    assert torch.allclose(ratio, ratio[..., :1, :1].expand_as(ratio), atol=1e-6)
    with torch.no_grad():
        eca.conv.weight.zero_()
    expected = 0.5  # sigmoid(0) and hardsigmoid(0) alike
    assert torch.allclose(eca(x), x * expected)
    with pytest.raises(ValueError, match="gate"):
        EfficientChannelAttention(32, gate="relu")


def test_se_is_a_channel_gate_with_reduced_hidden_layer():
    x = _positive_input()
    se = SqueezeExcitation(32, reduction=4)
    assert se.fc1.out_channels == 8
    y = se(x)
    ratio = y / x
    assert y.shape == x.shape and torch.all((ratio > 0) & (ratio < 1))
    assert torch.allclose(ratio, ratio[..., :1, :1].expand_as(ratio), atol=1e-6)
    # a large bias on the last layer opens the gate fully
    with torch.no_grad():
        se.fc2.bias.fill_(30.0)
    assert torch.allclose(se(x), x, atol=1e-5)


def test_cbam_channel_then_spatial_gate():
    x = _positive_input()
    cbam = CBAM(32, reduction=16)
    assert cbam.mlp[0].out_channels == 2 and cbam.spatial.kernel_size == (7, 7)
    y = cbam(x)
    assert y.shape == x.shape and torch.all((y >= 0) & (y <= x))
    # with every weight zero both gates are sigmoid(0) = 0.5
    with torch.no_grad():
        for p in cbam.parameters():
            p.zero_()
    assert torch.allclose(cbam(x), x * 0.25)
    # a tiny channel count still gets one hidden unit
    assert CBAM(8).mlp[0].out_channels == 1


def test_cbam_spatial_gate_follows_the_strong_pixels():
    cbam = CBAM(16)
    with torch.no_grad():
        for p in cbam.mlp.parameters():
            p.zero_()  # channel gate 0.5 everywhere
        cbam.spatial.weight.zero_()
        cbam.spatial.bias.zero_()
        cbam.spatial.weight[0, 1, 3, 3] = 10.0  # spatial gate driven by the channel max
    x = torch.full((1, 16, 6, 6), 0.1)
    x[:, :, 2, 3] = 1.0
    gate = cbam(x) / (0.5 * x)
    assert gate[0, 0, 2, 3] > 0.99 and gate[0, 0, 0, 0] < 0.75


def test_position_attention_is_identity_at_init_and_mixes_positions_after():
    pa = PositionAttention(32)
    x = torch.randn(2, 32, 5, 4)
    assert pa.gamma.item() == 0.0 and pa.query.out_channels == 4 and pa.value.out_channels == 32
    assert torch.equal(pa(x), x)
    with torch.no_grad():
        pa.gamma.fill_(1.0)
    y = pa(x)
    assert y.shape == x.shape and not torch.allclose(y, x)
    # global context: changing one pixel changes the output at every other pixel
    x2 = x.clone()
    x2[:, :, 0, 0] += 5.0
    delta = (pa(x2) - y).abs().sum(dim=1)
    assert torch.all(delta[:, 4, 3] > 0)
    # gamma receives a gradient, so the module can learn to use the context
    pa.zero_grad()
    pa(x).pow(2).sum().backward()
    assert pa.gamma.grad is not None and pa.gamma.grad.abs() > 0


def test_dense_atrous_pyramid_is_densely_connected():
    pyramid = DenseAtrousPyramid(32, growth=16, rates=(1, 6, 12, 18))
    in_channels = [layer.conv.in_channels for layer in pyramid.layers]
    dilations = [layer.conv.dilation[0] for layer in pyramid.layers]
    assert in_channels == [32, 48, 64, 80] and dilations == [1, 6, 12, 18]
    x = torch.randn(1, 32, 16, 12)
    y = pyramid(x)
    assert y.shape == (1, 16, 16, 12) and pyramid.out_channels == 16
    y.sum().backward()
    assert all(layer.conv.weight.grad is not None for layer in pyramid.layers)


def test_dense_atrous_pyramid_reaches_far():
    """Rates 1+6+12+18 give the last output a receptive field of 75 pixels: a change 30
    pixels away reaches the centre (a plain 4-layer 3x3 stack would see 4)."""
    pyramid = DenseAtrousPyramid(4, growth=4).eval()
    for m in pyramid.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.constant_(m.weight, 0.05)
    x = torch.zeros(1, 4, 64, 64)
    x2 = x.clone()
    x2[:, :, 32, 2] = 1.0
    with torch.no_grad():
        assert (pyramid(x2) - pyramid(x))[0, :, 32, 32].abs().sum() > 0
