"""Building blocks shared by more than one model.

Modules with a ``reparameterize()`` method change themselves into their deployed form
(batch norm folded, branches merged); ``slimpose.models.reparam.reparameterize_model``
calls it on every such module.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def fuse_conv_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of one convolution equal to ``bn(conv(x))`` in eval mode.

    Works for Conv2d and ConvTranspose2d weights alike: the BN scale is applied along
    the output-channel axis, which is dim 0 for Conv2d and dim 1 for ConvTranspose2d
    (pass the transposed-conv weight with ``weight.transpose(0, 1)`` and transpose back).
    """
    std = (bn.running_var + bn.eps).sqrt()
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    scale = gamma / std
    fused_w = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    conv_b = bias if bias is not None else torch.zeros_like(bn.running_mean)
    fused_b = beta + (conv_b - bn.running_mean) * scale
    return fused_w, fused_b


class _ConvBNActBase(nn.Module):
    """conv → BN → act, where deploying replaces conv and BN by one biased conv."""

    conv: nn.Module
    bn: nn.Module
    act: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    def _fused_conv(self) -> nn.Module:
        raise NotImplementedError

    @torch.no_grad()
    def reparameterize(self) -> None:
        if isinstance(self.bn, nn.BatchNorm2d):
            self.conv, self.bn = self._fused_conv(), nn.Identity()


class ConvBNAct(_ConvBNActBase):
    """Conv2d (no bias) → BatchNorm2d → optional activation; BN folds away on deploy."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        groups: int = 1,
        act: type[nn.Module] | None = nn.ReLU,
    ):
        super().__init__()
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(out_channels)
        self.act = act(inplace=True) if act in (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU) else (act() if act else nn.Identity())

    def _fused_conv(self) -> nn.Conv2d:
        w, b = fuse_conv_bn(self.conv.weight, self.conv.bias, self.bn)
        conv = self.conv
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                          conv.padding, conv.dilation, conv.groups, bias=True)
        fused.weight.copy_(w)
        fused.bias.copy_(b)
        return fused


class DeconvBNAct(_ConvBNActBase):
    """ConvTranspose2d (k4 s2 p1, no bias) → BN → ReLU: the 2x upsampling of
    SimpleBaseline-style heads; BN folds away on deploy, and a depthwise k4 one becomes a
    :class:`PhaseSplitUpsample`."""

    def __init__(self, in_channels: int, out_channels: int, groups: int = 1, kernel_size: int = 4):
        super().__init__()
        padding, output_padding = {4: (1, 0), 3: (1, 1), 2: (0, 0)}[kernel_size]
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, 2, padding, output_padding,
                                       groups=groups, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)

    def _fused_conv(self) -> nn.Module:
        fused = self._fused_deconv()
        if fused.groups == fused.in_channels == fused.out_channels and fused.kernel_size == (4, 4):
            return PhaseSplitUpsample(fused)
        return fused

    def _fused_deconv(self) -> nn.ConvTranspose2d:
        conv = self.conv
        # ConvTranspose2d weight is (in, out/groups, k, k); per-group output channels need
        # the group-wise view so that the BN scale lands on the right output channel.
        g = conv.groups
        w = conv.weight.reshape(g, conv.in_channels // g, conv.out_channels // g, *conv.kernel_size)
        w = w.permute(0, 2, 1, 3, 4).reshape(conv.out_channels, conv.in_channels // g, *conv.kernel_size)
        w, b = fuse_conv_bn(w, None, self.bn)
        w = w.reshape(g, conv.out_channels // g, conv.in_channels // g, *conv.kernel_size).permute(0, 2, 1, 3, 4)
        fused = nn.ConvTranspose2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                   conv.padding, conv.output_padding, groups=g, bias=True)
        fused.weight.copy_(w.reshape_as(conv.weight))
        fused.bias.copy_(b)
        return fused


# Input row (a = 0, 1, 2 for m - 1, m, m + 1) that feeds output row 2m + r of a k4 s2 p1
# transposed convolution, as its kernel row: out[2m] = w[3] in[m-1] + w[1] in[m],
# out[2m+1] = w[2] in[m] + w[0] in[m+1] (output y = 2 * input i - 1 + kernel k).
_PHASE_TAPS = ((3, 1, None), (None, 2, 0))


class PhaseSplitUpsample(nn.Module):
    """A depthwise ConvTranspose2d (k4 s2 p1) as the same function in ordinary layers: one
    depthwise 3x3 convolution per output phase (row and column parity; each uses 4 of its
    9 taps), the four interleaved by a pixel shuffle. ONNX Runtime runs depthwise
    convolutions fast and in INT8, grouped ConvTranspose slowly and only in float; LPN's
    head spends most of its time there. A deployed form: its params and MACs count the
    zero taps."""

    def __init__(self, deconv: nn.ConvTranspose2d):
        super().__init__()
        channels = deconv.out_channels
        kernel = deconv.weight.detach()[:, 0]  # (C, 4, 4): depthwise, one filter per channel
        phases = torch.zeros(2, 2, channels, 3, 3, dtype=kernel.dtype, device=kernel.device)
        for ry, rows in enumerate(_PHASE_TAPS):
            for rx, cols in enumerate(_PHASE_TAPS):
                for a, ky in enumerate(rows):
                    for b, kx in enumerate(cols):
                        if ky is not None and kx is not None:
                            phases[ry, rx, :, a, b] = kernel[:, ky, kx]
        self.phases = nn.ModuleList()
        for weight in phases.reshape(4, channels, 1, 3, 3):
            conv = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=deconv.bias is not None,
                             device=kernel.device, dtype=kernel.dtype)
            conv.weight.data.copy_(weight)
            if deconv.bias is not None:
                conv.bias.data.copy_(deconv.bias.detach())
            self.phases.append(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        # (N, C, 4, H, W) → channel c * 4 + phase, the order pixel_shuffle reads
        stacked = torch.stack([conv(x) for conv in self.phases], dim=2)
        return F.pixel_shuffle(stacked.reshape(n, 4 * c, h, w), 2)


def deconv_heatmap_decoder(in_channels: int, num_joints: int, channels: int = 64) -> nn.Sequential:
    """SimpleBaseline's heatmap decoder cut to two 2x deconv-BN-ReLU of ``channels``, then a
    1x1 conv to one heatmap per joint: stride 16 in, stride 4 out."""
    return nn.Sequential(DeconvBNAct(in_channels, channels), DeconvBNAct(channels, channels),
                         nn.Conv2d(channels, num_joints, 1))


class TrainingOnly(nn.Module):
    """Holds a module that training needs but inference does not (RLE's flow).

    Its parameters are trained and checkpointed with the model; the complexity counter
    leaves them out (papers count the network that runs at test time) and
    re-parameterisation drops them.
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


def init_weights_normal(module: nn.Module, std: float = 0.001) -> None:
    """HRNet/LPN initialisation: convs N(0, std) with zero bias, BN weight 1 bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual: 1x1 expansion → 3x3 depthwise (the stride sits
    here) → linear 1x1 projection, plus the input when the stride is 1 and the width is
    unchanged. ``expansion`` 1 drops the expansion conv, as MobileNetV2 does."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expansion: float = 2,
                 act: type[nn.Module] = nn.ReLU6):
        super().__init__()
        hidden = int(round(in_channels * expansion))
        layers = [ConvBNAct(in_channels, hidden, 1, act=act)] if hidden != in_channels else []
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act=act),
                   ConvBNAct(hidden, out_channels, 1, act=None)]
        self.block = nn.Sequential(*layers)
        self.use_shortcut = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_shortcut else out


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle on (B, C, H, W): channel ``g * C/groups + j`` moves
    to ``j * groups + g``, so that a following group conv sees channels of every group."""
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class TokenMLP(nn.Module):
    """MLP block over the last dimension with a residual:
    ``x + Linear(act(Linear(LayerNorm(x))))`` (MLP-Mixer's mixing block, a
    pre-norm transformer's feed-forward)."""

    def __init__(self, dim: int, hidden: int, act: type[nn.Module] = nn.GELU):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.act(self.fc1(self.norm(x))))
