"""Shared building blocks: deployed forms compute what the training forms compute."""

import pytest
import torch
import torch.nn as nn

from slimpose.models.layers import DeconvBNAct, PhaseSplitUpsample


def _trained(block: DeconvBNAct) -> DeconvBNAct:
    """Random weights and BN statistics, as after training, in eval mode."""
    torch.manual_seed(0)
    nn.init.normal_(block.conv.weight, std=0.3)
    block.bn.running_mean.uniform_(-0.5, 0.5)
    block.bn.running_var.uniform_(0.5, 2.0)
    nn.init.uniform_(block.bn.weight, 0.5, 1.5)
    nn.init.uniform_(block.bn.bias, -0.3, 0.3)
    return block.eval()


@pytest.mark.parametrize("size", [(8, 6), (5, 7), (1, 1)])
def test_a_depthwise_deconv_deploys_as_phase_convolutions_with_the_same_output(size):
    block = _trained(DeconvBNAct(16, 16, groups=16))
    x = torch.randn(2, 16, *size)
    with torch.no_grad():
        ref = block(x)
        block.reparameterize()
        out = block(x)
    assert isinstance(block.conv, PhaseSplitUpsample)
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in block.modules())
    assert out.shape == ref.shape == (2, 16, 2 * size[0], 2 * size[1])
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_phase_convolutions_equal_the_transposed_convolution_without_bias():
    deconv = nn.ConvTranspose2d(4, 4, 4, 2, 1, groups=4, bias=False)
    x = torch.randn(1, 4, 3, 5)
    with torch.no_grad():
        torch.testing.assert_close(PhaseSplitUpsample(deconv)(x), deconv(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("in_channels, out_channels, groups", [(16, 8, 1), (32, 16, 16)])
def test_dense_and_grouped_deconvs_stay_transposed_convolutions(in_channels, out_channels, groups):
    block = _trained(DeconvBNAct(in_channels, out_channels, groups=groups))
    x = torch.randn(1, in_channels, 4, 3)
    with torch.no_grad():
        ref = block(x)
        block.reparameterize()
        out = block(x)
    assert isinstance(block.conv, nn.ConvTranspose2d)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
