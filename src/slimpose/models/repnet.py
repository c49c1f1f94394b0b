"""RepNet: RepVGG backbone + multi-level fusion + RLE coordinate head (Zhang & Zhou,
Appl. Sci. 2023, seeds/000_c2965f43505c9ae8.txt).

Backbone: RepVGG-A0 (RepNet-A, width multipliers a=0.75, b=2.5) or RepVGG-A1
(RepNet-B, a=1, b=2.5); blocks per stage {1, 2, 4, 14, 1}, widths min(64, 64a), 64a,
128a, 256a, 512b, every stage starts with stride 2 (8x6 at 256x192).

Training block: 3x3 conv-BN + 1x1 conv-BN + identity BN (only when in == out and
stride 1), summed, ReLU. ``reparameterize()`` folds each BN into its kernel, pads the
1x1 kernel to 3x3, writes the identity as a 3x3 kernel and sums everything into ONE
3x3 convolution with bias. Module names follow the official RepVGG code
(``stage0``..``stage4``, ``rbr_dense``/``rbr_1x1``/``rbr_identity``/``rbr_reparam``), so an
ImageNet RepVGG checkpoint loads into ``model.backbone`` with ``strict=False``.

Multi-level fusion (paper section 3.2, Fig. 6): the maps of the last three stages
(strides 8, 16, 32) are brought to stride 16 and to one width C, then summed:

- stride 8:  1x1 conv-BN-ReLU to C, then 3x3 stride-2 conv-BN-ReLU;
- stride 16: 1x1 conv-BN-ReLU to C;
- stride 32: 1x1 conv-BN-ReLU to C, nearest 2x upsampling, then 3x3 dilation-2 conv-BN-ReLU.

Then global average pooling and one Linear layer to K x 4. The paper says the levels
are transformed "to the same dimensions" before being "fused", which is what an
element-wise sum needs (a concatenation would not), so the levels are summed. The 1x1
channel reduction comes before the spatial 3x3 convs: a dilated 3x3 conv on the
1280-channel stride-32 map alone would cost 14.7M parameters, which the paper's totals
(backbone 7.03M of 7.17M deployed) rule out. C = 48 reproduces the published totals
for both variants (A deploy 7.15M / 1.35 GMACs, train 7.95M / 1.50; B deploy 11.63M /
2.33, train 12.94M / 2.59).

Training outputs for the pooled-RLE head (``slimpose.heads.pooled_rle``, configured in
``model.head``): with ``position_outputs=True`` training applies the Linear at every
position of the fused map and averages the positions (the same numbers as pooling first:
a Linear commutes with the mean) and returns the per-position outputs beside the joints;
``auxiliary_heatmaps=True`` adds a training-only heatmap decoder on the fused map (two 2x
deconvolutions to stride 4, SimpleBaseline's head cut short) whose maps training returns
too. A training forward with either returns a dict ``{"joints", "positions", "heatmaps"}``
(absent parts None); otherwise, and always in eval mode, the (N, K, 4) tensor. Like the
flow, the decoder is left out of parameter counts and dropped on deploy. The output is
linear in the pooled fused map, so the head can also refit the Linear's coordinate rows in
closed form when a stage ends (``model.head.refit_crops``).

Output contract of coordinate models: ``forward(x)`` returns (N, K, 4): columns 0:2
the keypoint coordinates normalised to the input (x / W, y / H), columns 2:4 sigma_x,
sigma_y after a sigmoid. The RealNVP flow of RLE (``slimpose.models.flow.RealNVP``) is the
model's training-only ``flow`` (left out of parameter counts); the deployed model has none.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from slimpose.models.flow import RealNVP
from slimpose.models.layers import (ConvBNAct, TrainingOnly, deconv_heatmap_decoder, fuse_conv_bn,
                                   init_weights_normal)
from slimpose.models.registry import PaperFigures, register_model

NUM_BLOCKS_A = (1, 2, 4, 14, 1)


def _branch_kernel(branch: ConvBNAct) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of a conv-BN branch, whether its BN is still there or already folded
    (``reparameterize_model`` may reach the branch's own ``reparameterize`` first)."""
    conv = branch.conv
    if isinstance(branch.bn, nn.BatchNorm2d):
        return fuse_conv_bn(conv.weight, conv.bias, branch.bn)
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels, device=conv.weight.device)
    return conv.weight, bias


class RepVGGBlock(nn.Module):
    """RepVGG block: 3x3 conv-BN + 1x1 conv-BN + identity BN, summed, ReLU (training form);
    a single 3x3 conv with bias followed by ReLU after ``reparameterize()``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, deploy: bool = False):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.act = nn.ReLU(inplace=True)
        if deploy:
            self.rbr_reparam = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=True)
            return
        self.rbr_dense = ConvBNAct(in_channels, out_channels, 3, stride, 1, act=None)
        self.rbr_1x1 = ConvBNAct(in_channels, out_channels, 1, stride, 0, act=None)
        self.rbr_identity = nn.BatchNorm2d(in_channels) if in_channels == out_channels and stride == 1 else None

    @property
    def deployed(self) -> bool:
        return hasattr(self, "rbr_reparam")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deployed:
            return self.act(self.rbr_reparam(x))
        out = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            out = out + self.rbr_identity(x)
        return self.act(out)

    @torch.no_grad()
    def equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The 3x3 kernel and bias of the one convolution equal to the three branches (eval mode)."""
        k3, b3 = _branch_kernel(self.rbr_dense)
        k1, b1 = _branch_kernel(self.rbr_1x1)
        kernel = k3 + F.pad(k1, [1, 1, 1, 1])
        bias = b3 + b1
        if self.rbr_identity is not None:
            # Identity as a 3x3 kernel: 1 at the centre of channel i -> i, then fold its BN.
            ident = torch.zeros_like(k3)
            idx = torch.arange(self.in_channels, device=k3.device)
            ident[idx, idx, 1, 1] = 1.0
            ki, bi = fuse_conv_bn(ident, None, self.rbr_identity)
            kernel = kernel + ki
            bias = bias + bi
        return kernel, bias

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.deployed:
            return
        kernel, bias = self.equivalent_kernel_bias()
        conv = nn.Conv2d(self.in_channels, self.out_channels, 3, self.stride, 1, bias=True)
        conv = conv.to(device=kernel.device, dtype=kernel.dtype)
        conv.weight.copy_(kernel)
        conv.bias.copy_(bias)
        self.rbr_reparam = conv
        del self.rbr_dense, self.rbr_1x1, self.rbr_identity


class RepVGG(nn.Module):
    """RepVGG-A feature extractor (no classifier); returns the maps of stages 2, 3 and 4
    (strides 8, 16, 32)."""

    def __init__(self, num_blocks=NUM_BLOCKS_A, width_multiplier=(0.75, 2.5), deploy: bool = False):
        super().__init__()
        a, b = width_multiplier
        widths = [min(64, int(64 * a)), int(64 * a), int(128 * a), int(256 * a), int(512 * b)]
        self.widths = widths
        self.stage0 = RepVGGBlock(3, widths[0], 2, deploy)  # official RepVGG: a single block
        in_c = widths[0]
        for i in range(1, 5):
            blocks = []
            for j in range(num_blocks[i]):
                blocks.append(RepVGGBlock(in_c, widths[i], 2 if j == 0 else 1, deploy))
                in_c = widths[i]
            setattr(self, f"stage{i}", nn.Sequential(*blocks))
        if num_blocks[0] != 1:
            raise ValueError("RepVGG has exactly one block in stage 0")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stage1(self.stage0(x))
        c3 = self.stage2(x)
        c4 = self.stage3(c3)
        c5 = self.stage4(c4)
        return [c3, c4, c5]


class MultiLevelFusion(nn.Module):
    """Paper Fig. 6: strides 8/16/32 brought to stride 16 and to ``channels``, then summed."""

    def __init__(self, in_channels: tuple[int, int, int], channels: int = 48):
        super().__init__()
        c8, c16, c32 = in_channels
        self.reduce8 = ConvBNAct(c8, channels, 1)
        self.down8 = ConvBNAct(channels, channels, 3, stride=2)
        self.reduce16 = ConvBNAct(c16, channels, 1)
        self.reduce32 = ConvBNAct(c32, channels, 1)
        self.up32 = ConvBNAct(channels, channels, 3, dilation=2)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        f8, f16, f32 = feats
        y16 = self.reduce16(f16)
        y8 = self.down8(self.reduce8(f8))
        y32 = F.interpolate(self.reduce32(f32), size=y16.shape[-2:], mode="nearest")
        y32 = self.up32(y32)
        return y8 + y16 + y32


class RepNet(nn.Module):
    """RepVGG backbone → multi-level fusion → global average pooling → Linear(C, K x 4)."""

    def __init__(
        self,
        num_joints: int = 17,
        width_multiplier=(0.75, 2.5),
        num_blocks=NUM_BLOCKS_A,
        fusion_channels: int = 48,
        init_std: float = 0.0,
        auxiliary_heatmaps: bool = False,
        position_outputs: bool = False,
        deploy: bool = False,
    ):
        super().__init__()
        self.k = num_joints
        self.backbone = RepVGG(num_blocks, width_multiplier, deploy)
        self.neck = MultiLevelFusion(tuple(self.backbone.widths[2:]), fusion_channels)
        # The heatmap loss trains the backbone and fusion as fast as a heatmap model's loss
        # does, which the pooled regression alone does not (projects/repnet_lspet/README.md).
        self.heatmap_decoder = (TrainingOnly(deconv_heatmap_decoder(fusion_channels, num_joints))
                                if auxiliary_heatmaps and not deploy else None)
        if init_std > 0:
            # LPN's and HRNet's init for training from scratch: with BN behind every conv
            # the weights' scale leaves the function alone but sets how far an Adam step
            # moves it; PyTorch's default init makes RepVGG-A0 learn several times slower.
            for part in (self.backbone, self.neck, self.heatmap_decoder):
                if part is not None:
                    init_weights_normal(part, std=init_std)
        self.position_outputs = position_outputs
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(fusion_channels, num_joints * 4)
        # MMPose RLEHead initialises the fc with N(0, 0.01); the coordinate biases start at
        # the crop centre and the sigma biases at 0 (sigma = 0.5).
        nn.init.normal_(self.head.weight, std=0.01)
        with torch.no_grad():
            bias = self.head.bias.view(num_joints, 4)
            bias[:, :2] = 0.5
            bias[:, 2:] = 0.0
        # The RLE flow is trained with the model, so it lives here (as in MMPose's RLE head):
        # the optimiser, checkpoints, resume and DDP's rank-0 broadcast all cover it. It is
        # used only by the loss; forward never calls it, so the exported graph is flow-free.
        self.flow = None if deploy else TrainingOnly(RealNVP())
        if deploy:  # build directly in the deployed layout (to load a deployed state dict)
            for m in list(self.neck.modules()):
                if isinstance(m, ConvBNAct):
                    m.reparameterize()

    def reparameterize(self) -> None:
        self.flow = None
        self.heatmap_decoder = None

    def fused_features(self, x: torch.Tensor) -> torch.Tensor:
        """The fused stride-16 map that the pooling and the Linear read, (N, C, H/16, W/16)."""
        return self.neck(self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor | None]:
        fused = self.fused_features(x)
        heatmaps = self.heatmap_decoder(fused) if self.training and self.heatmap_decoder is not None else None
        positions = None
        if self.training and self.position_outputs:
            n, _, h, w = fused.shape
            positions = self.head(fused.permute(0, 2, 3, 1)).reshape(n, h, w, self.k, 4)
            out = positions.mean((1, 2))
        else:
            out = self.head(self.pool(fused).flatten(1)).reshape(-1, self.k, 4)
        joints = torch.cat([out[..., :2], out[..., 2:].sigmoid()], dim=-1)
        if positions is None and heatmaps is None:
            return joints
        return {"joints": joints, "positions": positions, "heatmaps": heatmaps}


_NOTE = "256x192, 17 joints; GMACs = 1e9 MACs of conv + linear"


# Found on torch 2.13+cpu: the process dies with "munmap_chunk(): invalid pointer" or a
# segfault in the first backward pass; with torch.backends.mkldnn off it does not.
_CHANNELS_LAST_CPU = ("on a CPU, oneDNN's channels-last convolution backward corrupts memory in RepVGG's "
                      "stride-2 1x1 branches (the process aborts in the first step); train RepNet on a CPU "
                      "in the default layout")

_REPNET_PREFIXES = ("backbone.", "neck.", "head.", "flow.", "heatmap_decoder.")


def repvgg_imagenet_key(key: str) -> str | None:
    """A key of ``model.pretrained`` → RepNet's key. RepNet's own checkpoints (a warm
    restart, or a network whose backbone and fusion were trained under another head) keep
    their keys; an official RepVGG ImageNet checkpoint's keys follow the official module
    names, so they only gain the ``backbone.`` prefix, and its classifier is dropped."""
    if key.startswith(_REPNET_PREFIXES):
        return key
    return None if key.startswith("linear.") else f"backbone.{key}"


@register_model(
    "repnet_a",
    output_kind="coordinate",
    paper=[
        PaperFigures(7.96, 1.49, form="train", note="Table 5 training stage; " + _NOTE),
        PaperFigures(7.17, 1.34, form="deploy", note="Table 3 params (Table 5: 7.16M), Table 5 GFLOPs; " + _NOTE),
    ],
    tolerance=0.03,
    weight_filter=repvgg_imagenet_key,
    head="pooled_rle",
    channels_last_cpu_problem=_CHANNELS_LAST_CPU,
)
def repnet_a(num_joints: int = 17, input_size=(256, 192), **kw) -> RepNet:
    """RepNet-A: RepVGG-A0 backbone + multi-level fusion + RLE regression head."""
    return RepNet(num_joints, (0.75, 2.5), NUM_BLOCKS_A, **kw)


@register_model(
    "repnet_b",
    output_kind="coordinate",
    paper=[
        PaperFigures(12.95, 2.59, form="train", note="Table 5 training stage; " + _NOTE),
        PaperFigures(11.65, 2.32, form="deploy", note="Table 3 (Table 5: 11.64M); " + _NOTE),
    ],
    tolerance=0.03,
    weight_filter=repvgg_imagenet_key,
    head="pooled_rle",
    channels_last_cpu_problem=_CHANNELS_LAST_CPU,
)
def repnet_b(num_joints: int = 17, input_size=(256, 192), **kw) -> RepNet:
    """RepNet-B: RepVGG-A1 backbone + multi-level fusion + RLE regression head."""
    return RepNet(num_joints, (1.0, 2.5), NUM_BLOCKS_A, **kw)
