"""TinyPose: a small heatmap network for the quickstart and for engine tests.

Depthwise-separable encoder to stride 16, two deconvolutions back to stride 4. It
trains to a useful accuracy on the synthetic data in a few CPU minutes; it is not a
paper model and carries no paper figures.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from slimpose.models.layers import ConvBNAct, DeconvBNAct, init_weights_normal
from slimpose.models.registry import register_model


class SeparableBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.dw = ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels)
        self.pw = ConvBNAct(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class TinyPose(nn.Module):
    def __init__(self, num_joints: int = 17, width: int = 32, deconv_channels: int = 64):
        super().__init__()
        w = width
        self.stem = nn.Sequential(ConvBNAct(3, w, 3, 2), SeparableBlock(w, w, 1))
        self.encoder = nn.Sequential(
            SeparableBlock(w, 2 * w, 2), SeparableBlock(2 * w, 2 * w, 1),
            SeparableBlock(2 * w, 4 * w, 2), SeparableBlock(4 * w, 4 * w, 1),
            SeparableBlock(4 * w, 8 * w, 2), SeparableBlock(8 * w, 8 * w, 1), SeparableBlock(8 * w, 8 * w, 1),
        )
        self.decoder = nn.Sequential(
            DeconvBNAct(8 * w, deconv_channels), DeconvBNAct(deconv_channels, deconv_channels),
        )
        self.final = nn.Conv2d(deconv_channels, num_joints, 1)
        init_weights_normal(self, std=0.01)
        # Kaiming keeps a small randomly-initialised net trainable in a few hundred steps.
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.final:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final(self.decoder(self.encoder(self.stem(x))))


@register_model("tinypose", output_kind="heatmap", description="small depthwise encoder-decoder for quickstart and tests")
def tinypose(num_joints: int = 17, input_size=(256, 192), width: int = 32, deconv_channels: int = 64) -> TinyPose:
    return TinyPose(num_joints, width, deconv_channels)
