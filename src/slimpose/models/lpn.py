"""LPN: Lightweight Pose Network (Zhang et al., "Simple and Lightweight Human Pose
Estimation", seeds/002_decd7d3e3aba84ac.txt).

A SimpleBaseline-style network: a ResNet layout built from the *lightweight bottleneck*
(expansion 1, 3x3 depthwise middle conv, optional GCNet global-context block), layer4
kept at stride 16, and two "group deconvolution + 1x1 conv" upsampling stages back to
stride 4, then a 1x1 conv to K heatmaps.

    block:  1x1 conv-BN-ReLU → 3x3 dw conv (stride)-BN-ReLU → 1x1 conv-BN → GC
            → + shortcut (1x1 conv-BN when stride or width changes) → ReLU
    stem:   7x7/2 conv 64-BN-ReLU → 3x3/2 maxpool
    stages: widths 64/128/256/512, strides 1/2/2/1
    head:   2 x [ConvTranspose2d k4 s2 p1 groups=gcd(C_in,256) → BN → ReLU
                 → 1x1 conv 256 → BN → ReLU] → 1x1 conv → K (bias)

All convs are initialised N(0, 0.001) (no ImageNet pretraining); the GC block's last
conv is zero-initialised, so each GC block starts as the identity.

Complexity (this implementation, conv/linear MACs in 1e9 units, 256x192, K=17):
LPN-50 2.91M / 1.068, LPN-101 5.35M / 1.504, LPN-152 7.38M / 1.943; the paper's
tables divide by 2^30 (1.0G / 1.4G / 1.8G).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from slimpose.models.layers import ConvBNAct, DeconvBNAct, init_weights_normal
from slimpose.models.registry import PaperFigures, register_model

DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
WIDTHS = (64, 128, 256, 512)
STRIDES = (1, 2, 2, 1)


class GlobalContextBlock(nn.Module):
    """GCNet context block (attention pooling, channel-add fusion).

    Attention pooling: 1x1 conv C→1, softmax over HxW, weighted sum of the input →
    (N, C, 1, 1); transform: 1x1 conv C→P, LayerNorm([P,1,1]), ReLU, 1x1 conv P→C;
    the result is broadcast-added to the input. P = max(C // ratio, min_planes).
    """

    def __init__(self, channels: int, ratio: int = 16, min_planes: int = 16):
        super().__init__()
        planes = max(channels // ratio, min_planes)
        self.conv_mask = nn.Conv2d(channels, 1, 1)
        self.channel_add = nn.Sequential(
            nn.Conv2d(channels, planes, 1),
            nn.LayerNorm([planes, 1, 1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(planes, channels, 1),
        )

    def reset_last_conv(self) -> None:
        nn.init.zeros_(self.channel_add[-1].weight)
        nn.init.zeros_(self.channel_add[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # GCNet's formula, written channels-last: ONNX Runtime runs (quantised) convs in
        # NHWC, and each permute below cancels the transpose it would insert before a
        # reshape, matmul or LayerNorm written channels-first (102 transposes of the INT8
        # LPN-50 graph down to 6, about 7% of its latency). Channels-last training
        # makes the permutes free in PyTorch too.
        n, c, h, w = x.shape
        mask = self.conv_mask(x).permute(0, 2, 3, 1).reshape(n, 1, h * w).softmax(dim=-1)
        positions = x.permute(0, 2, 3, 1).reshape(n, h * w, c)
        context = torch.matmul(mask, positions).reshape(n, 1, 1, c).permute(0, 3, 1, 2)  # (N, C, 1, 1)
        reduce, norm, act, expand = self.channel_add
        hidden = reduce(context).permute(0, 2, 3, 1)  # (N, 1, 1, P): LayerNorm over P
        hidden = F.layer_norm(hidden, hidden.shape[-1:], norm.weight.flatten(), norm.bias.flatten(), norm.eps)
        return x + expand(act(hidden).permute(0, 3, 1, 2))


class LightweightBottleneck(nn.Module):
    """Bottleneck with expansion 1 and a depthwise 3x3 (the stride sits there)."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1, use_gc: bool = True):
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, channels, 1)
        self.conv2 = ConvBNAct(channels, channels, 3, stride, groups=channels)
        self.conv3 = ConvBNAct(channels, channels, 1, act=None)
        self.gc = GlobalContextBlock(channels) if use_gc else nn.Identity()
        self.shortcut = (ConvBNAct(in_channels, channels, 1, stride, act=None)
                         if stride != 1 or in_channels != channels else nn.Identity())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.gc(self.conv3(self.conv2(self.conv1(x))))
        return self.relu(out + self.shortcut(x))


class UpsampleStage(nn.Module):
    """Group deconvolution (groups = gcd(C_in, C_out)) followed by a 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int = 256):
        super().__init__()
        self.deconv = DeconvBNAct(in_channels, out_channels, groups=math.gcd(in_channels, out_channels))
        self.pw = ConvBNAct(out_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.deconv(x))


class LPN(nn.Module):
    def __init__(self, depth: int = 50, num_joints: int = 17, use_gc: bool = True,
                 deconv_channels: int = 256, num_deconv: int = 2, init_std: float = 0.001,
                 zero_init_residual: bool = False):
        """``zero_init_residual`` (torchvision's ResNet option) starts each bottleneck's last BN
        at zero, so every block after a stage's first is the identity until trained: a deeper
        LPN given a shallower one's weights (``model.pretrained``) then starts as that network."""
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"LPN depth must be one of {sorted(DEPTHS)}, got {depth}")
        self.stem = nn.Sequential(ConvBNAct(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1))
        layers, in_ch = [], 64
        for n, width, stride in zip(DEPTHS[depth], WIDTHS, STRIDES):
            blocks = [LightweightBottleneck(in_ch, width, stride, use_gc)]
            blocks += [LightweightBottleneck(width, width, 1, use_gc) for _ in range(n - 1)]
            layers.append(nn.Sequential(*blocks))
            in_ch = width
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        ups = []
        for _ in range(num_deconv):
            ups.append(UpsampleStage(in_ch, deconv_channels))
            in_ch = deconv_channels
        self.upsample = nn.Sequential(*ups)
        self.final = nn.Conv2d(in_ch, num_joints, 1)
        init_weights_normal(self, std=init_std)
        for m in self.modules():
            if isinstance(m, GlobalContextBlock):
                m.reset_last_conv()
            if zero_init_residual and isinstance(m, LightweightBottleneck):
                nn.init.zeros_(m.conv3.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.final(self.upsample(x))


_GC_NOTE = "Table 1/3; paper FLOPs column is MACs / 2^30 (1.0G, 1.4G, 1.8G)"
# Table 3 gives FLOPs to 4 decimals (units of 2^30) for both forms, e.g. LPN-50 1.0063G
# without / 1.0079G with GC. Those figures count each deconvolution's weights once per
# *output* pixel (+14.16M MACs over SPEC's per-input-pixel count for the two LPN
# deconvs); removing that and converting to 1e9 units gives the gmacs below, which this
# implementation reproduces to 4 digits. With GC the same conversion gives 1.068 / 1.504
# / 1.943, the figures used for the GC variants.
_NOGC_NOTE = "Table 3 ablation (no GC block); gmacs = Table 3 FLOPs x 2^30 less per-output deconv count"


def _lpn(depth: int, use_gc: bool, num_joints: int, **kw) -> LPN:
    return LPN(depth, num_joints, use_gc=use_gc, **kw)


@register_model("lpn_50", output_kind="heatmap", decode="softargmax", paper=[
    PaperFigures(2.91, 1.068, note=_GC_NOTE),
    PaperFigures(2.91, 1.423, input_size=(256, 256), num_joints=16,
                 note="256x256, MPII 16 joints (not in the paper; SPEC/brief figure ~1.42, computed 1.423)"),
])
def lpn_50(num_joints: int = 17, input_size=(256, 192), **kw) -> LPN:
    """LPN-50: lightweight bottlenecks [3,4,6,3] with GC blocks."""
    return _lpn(50, True, num_joints, **kw)


@register_model("lpn_101", output_kind="heatmap", decode="softargmax", paper=[PaperFigures(5.35, 1.504, note=_GC_NOTE)])
def lpn_101(num_joints: int = 17, input_size=(256, 192), **kw) -> LPN:
    """LPN-101: lightweight bottlenecks [3,4,23,3] with GC blocks."""
    return _lpn(101, True, num_joints, **kw)


@register_model("lpn_152", output_kind="heatmap", decode="softargmax", paper=[PaperFigures(7.38, 1.943, note=_GC_NOTE)])
def lpn_152(num_joints: int = 17, input_size=(256, 192), **kw) -> LPN:
    """LPN-152: lightweight bottlenecks [3,8,36,3] with GC blocks."""
    return _lpn(152, True, num_joints, **kw)


@register_model("lpn_50_nogc", output_kind="heatmap", decode="softargmax", paper=[PaperFigures(2.73, 1.066, note=_NOGC_NOTE)])
def lpn_50_nogc(num_joints: int = 17, input_size=(256, 192), **kw) -> LPN:
    """LPN-50 without GC blocks (paper Table 3 ablation)."""
    return _lpn(50, False, num_joints, **kw)


@register_model("lpn_101_nogc", output_kind="heatmap", decode="softargmax", paper=[PaperFigures(5.03, 1.502, note=_NOGC_NOTE)])
def lpn_101_nogc(num_joints: int = 17, input_size=(256, 192), **kw) -> LPN:
    """LPN-101 without GC blocks (paper Table 3 ablation)."""
    return _lpn(101, False, num_joints, **kw)


@register_model("lpn_152_nogc", output_kind="heatmap", decode="softargmax", paper=[PaperFigures(6.92, 1.939, note=_NOGC_NOTE)])
def lpn_152_nogc(num_joints: int = 17, input_size=(256, 192), **kw) -> LPN:
    """LPN-152 without GC blocks (paper Table 3 ablation)."""
    return _lpn(152, False, num_joints, **kw)
