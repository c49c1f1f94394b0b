"""Attention and context modules shared by the multi-resolution models (hrnet.py).

    SqueezeExcitation      GAP → 1x1 C→C/r → ReLU → 1x1 C/r→C → sigmoid → x * w      (SE-Net)
    EfficientChannelAttention  GAP → 1-D conv over channels (adaptive odd kernel) → gate  (ECA-Net)
    CBAM                   channel gate (avg- and max-pooled through one MLP) then spatial gate
                           (channel mean and max → 7x7 conv → sigmoid)                  (CBAM)
    PositionAttention      x + gamma * (value · softmax(query^T key)^T), gamma starts at 0  (DANet)
    DenseAtrousPyramid     3x3 atrous convs, each on the concatenation of all earlier outputs
                           (DenseASPP); returns the last one

The pooled-vector MLPs are 1x1 convolutions so that they count as conv MACs and export
as plain Conv nodes; the attention products use ``torch.matmul`` so that an aten-level
MAC counter sees them.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from slimpose.models.layers import ConvBNAct


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """ECA-Net's adaptive kernel |log2(C)/gamma + b/gamma|, rounded up to the next odd size."""
    t = int(abs(math.log2(channels) / gamma + b / gamma))
    return t if t % 2 else t + 1


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1))))
        return x * torch.sigmoid(w)


class EfficientChannelAttention(nn.Module):
    """ECA gate; ``gate`` is the squashing function (sigmoid in ECA-Net, hard-sigmoid in
    SDHRNet's semantic enhancement module)."""

    def __init__(self, channels: int, gate: str = "sigmoid"):
        super().__init__()
        if gate not in ("sigmoid", "hardsigmoid"):
            raise ValueError(f"ECA gate must be 'sigmoid' or 'hardsigmoid', got {gate!r}")
        k = eca_kernel_size(channels)
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)
        self.gate = torch.sigmoid if gate == "sigmoid" else F.hardsigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(x, 1).flatten(1).unsqueeze(1)  # (N, 1, C): channels as a sequence
        w = self.conv(pooled).transpose(1, 2).unsqueeze(-1)  # (N, C, 1, 1)
        return x * self.gate(w)


class CBAM(nn.Module):
    def __init__(self, channels: int, reduction: int = 16, spatial_kernel: int = 7):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))
        self.spatial = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel_logits = self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1))
        x = x * torch.sigmoid(channel_logits)
        descriptor = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(descriptor))


class PositionAttention(nn.Module):
    """DANet position attention: every pixel attends to every other pixel of the map.

    Query and key are 1x1 convs to C/8, value a 1x1 conv to C; the learnable ``gamma``
    starts at 0, so the module starts as the identity and learns how much context to add.
    """

    def __init__(self, channels: int, key_reduction: int = 8):
        super().__init__()
        key_channels = max(channels // key_reduction, 1)
        self.query = nn.Conv2d(channels, key_channels, 1)
        self.key = nn.Conv2d(channels, key_channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # (N, HW, C')
        k = self.key(x).flatten(2)  # (N, C', HW)
        attention = torch.matmul(q, k).softmax(dim=-1)  # (N, HW, HW): row i = where pixel i looks
        v = self.value(x).flatten(2)  # (N, C, HW)
        out = torch.matmul(v, attention.transpose(1, 2)).reshape(n, c, h, w)
        return x + self.gamma * out


class DenseAtrousPyramid(nn.Module):
    """Densely connected 3x3 atrous convs (conv-BN-ReLU, ``growth`` channels each); layer l
    sees the input and all earlier outputs concatenated. Returns the last layer's output,
    whose receptive field spans the whole pyramid."""

    def __init__(self, in_channels: int, growth: int, rates: tuple[int, ...] = (1, 6, 12, 18)):
        super().__init__()
        self.layers = nn.ModuleList(
            ConvBNAct(in_channels + i * growth, growth, 3, dilation=r) for i, r in enumerate(rates)
        )
        self.out_channels = growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1) if len(features) > 1 else x))
        return features[-1]
