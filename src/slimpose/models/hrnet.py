"""The HRNet family: HRNet-W32 (Sun et al., CVPR 2019) and two light variants built on
its skeleton, SDHRNet (seeds/001_7c9292d5746d31e2.txt) and EL-HRNet
(seeds/003_0a40f1580e6d5128.txt).

The skeleton is written once (:class:`HRNet`) and parameterised by the residual block of
stages 2-4, the module and block counts, the branch widths, an optional module on the
deepest branch as it enters the last stage, and the head:

    stem     3x3/2 conv 64-BN-ReLU → 3x3/2 conv 64-BN-ReLU                    (1/4 resolution)
    stage 1  4 Bottlenecks (64 → 256)                            = the "low-order features"
    stage 2..4  1 / 4 / 3 multi-resolution modules; each runs 4 blocks per branch, then
             fuses: branch i receives every branch j, 1x1 conv-BN + nearest upsampling
             from a lower resolution, (i - j) 3x3/2 convs from a higher one, summed, ReLU
    transitions  3x3 conv-BN-ReLU to the new widths; each new branch is a 3x3/2 conv of
             the previous deepest one. Widths 32/64/128/256 at 1/4, 1/8, 1/16, 1/32.
    The last module fuses into the high-resolution branch only; the head reads it.

Variants (the block of stages 2-4 / extras):

    hrnet_w32   BasicBlock (two 3x3 conv-BN, residual), 1x1 conv head → K heatmaps
    sdhrnet     SCR block = SC(SE) → SC(ECA) + input → ReLU, where an SC module is a
                3x3 conv C→C/2 and a depthwise 3x3 on it, concatenated (C), then the
                channel gate; SEM on the 1/32 branch entering stage 4 (ECA with a
                hard-sigmoid gate, plus DANet position attention, summed); DASP head:
                densely connected 3x3 atrous convs (rates 1/6/12/18, 16 channels each)
                on the high-resolution output, its last output and the stage-1 features
                each 1x1-conv'd to 32, concatenated, 1x1 conv, 1x1 conv → K (paper Eq. 19)
    sdhrnet_scr, sdhrnet_scr_dasp   the ablation rows of SDHRNet's Table 3
    elhrnet     LA-Basicblock = NConv → BN → ReLU → NConv → BN → CBAM + input → ReLU, where
                NConv(C) is a 1x1 conv C→C/2 and a depthwise 3x3 on it, concatenated (C)

Complexity. All three papers report "GFLOPs" from HRNet's own summary tool
(``get_model_summary`` in HRNet's lib/utils/utils.py): conv and linear MACs divided by
1024^3, not 1e9. That is the whole gap between HRNet-W32's published 7.1 and the
7.645 GMACs (1e9 units) counted here: 7.645e9 / 2^30 = 7.12. The same divisor
reproduces every figure of both papers with the architectures below (2^30 units, ours /
paper): HRNet-W32 7.12 / 7.1 (9.49 / 9.5 at 256x256); SDHRNet 4.55 / 4.5 and 6.07 / 6.0
at 256x256 K=16; SCR only 4.43 / 4.4; SCR + DASP 4.55 / 4.5; EL-HRNet 2.00 / 2.0 and
2.67 / 2.66 at 256x256. The registered ``gmacs`` are the papers' figures times
2^30 / 1e9, so they compare with this project's 1e9-unit count. Params (millions, ours /
paper): HRNet-W32 28.54 / 28.5, SDHRNet 16.79 / 16.8, SCR only 16.66 / 16.7, SCR + DASP
16.70 / 16.7, EL-HRNet 4.87 / 5.0 (-2.7%: the paper rounds, or counts a few more
parameters in its CBAM, whose exact layers it does not give).

Deviations, all forced by what the papers leave out:
- BN placement in the half-depthwise convs: each of the two convs has its own BN (it
  folds into that conv on deploy); EL-HRNet's "NConv → BN" over the concatenation is the
  same function class, since the depthwise conv is linear in its (affine) input.
- SDHRNet's SC modules: ReLU after the first SC, none after the second (as in HRNet's
  BasicBlock, the residual sum is followed by ReLU). The DASP growth (16) and fusion
  width (32) are not given; they are sized to the +0.1 GMACs of Table 3 (SCR → SCR+DASP).
- EL-HRNet's CBAM: MLP reduction 16 (at least one hidden unit), 7x7 spatial conv.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from slimpose.models.attention import CBAM, DenseAtrousPyramid, EfficientChannelAttention, PositionAttention, SqueezeExcitation
from slimpose.models.layers import ConvBNAct, init_weights_normal
from slimpose.models.registry import PaperFigures, register_model

BlockFactory = Callable[[int], nn.Module]
WIDTHS_W32 = (32, 64, 128, 256)
MODULES_PER_STAGE = (1, 4, 3)
BLOCKS_PER_BRANCH = 4
STEM_WIDTH = 64


# --------------------------------------------------------------------------- blocks


class Bottleneck(nn.Module):
    """ResNet bottleneck (expansion 4) of HRNet's first stage."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int):
        super().__init__()
        out = planes * self.expansion
        self.body = nn.Sequential(ConvBNAct(in_channels, planes, 1), ConvBNAct(planes, planes, 3),
                                  ConvBNAct(planes, out, 1, act=None))
        self.shortcut = ConvBNAct(in_channels, out, 1, act=None) if in_channels != out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN with a residual: HRNet's block of stages 2-4."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(ConvBNAct(channels, channels, 3), ConvBNAct(channels, channels, 3, act=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + x)


class HalfDepthwiseConv(nn.Module):
    """A kxk conv to half the output channels and a depthwise 3x3 on that half,
    concatenated (SDHRNet's half-channel depthwise unit with k=3, EL-HRNet's NConv3x3
    with k=1), then the activation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, act: type[nn.Module] | None = nn.ReLU):
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"HalfDepthwiseConv needs an even number of output channels, got {out_channels}")
        half = out_channels // 2
        self.primary = ConvBNAct(in_channels, half, kernel_size, act=None)
        self.cheap = ConvBNAct(half, half, 3, groups=half, act=None)
        self.act = act(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.primary(x)
        return self.act(torch.cat([y, self.cheap(y)], dim=1))


class SCRBlock(nn.Module):
    """SDHRNet's lightweight feature encoder: SC(SE, ReLU) → SC(ECA) + input → ReLU."""

    def __init__(self, channels: int, se_reduction: int = 4):
        super().__init__()
        self.sc1 = nn.Sequential(HalfDepthwiseConv(channels, channels, 3, act=nn.ReLU),
                                 SqueezeExcitation(channels, se_reduction))
        self.sc2 = nn.Sequential(HalfDepthwiseConv(channels, channels, 3, act=None),
                                 EfficientChannelAttention(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.sc2(self.sc1(x)) + x)


class LABasicBlock(nn.Module):
    """EL-HRNet's LA-Basicblock: NConv → BN → ReLU → NConv → BN → CBAM + input → ReLU."""

    def __init__(self, channels: int, cbam_reduction: int = 16):
        super().__init__()
        self.body = nn.Sequential(HalfDepthwiseConv(channels, channels, 1, act=nn.ReLU),
                                  HalfDepthwiseConv(channels, channels, 1, act=None),
                                  CBAM(channels, cbam_reduction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + x)


class SemanticEnhancement(nn.Module):
    """SDHRNet's SEM: x * hardsigmoid(ECA(GAP(x))) + position attention(x) (Eqs. 15-17)."""

    def __init__(self, channels: int):
        super().__init__()
        self.channel = EfficientChannelAttention(channels, gate="hardsigmoid")
        self.spatial = PositionAttention(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel(x) + self.spatial(x)


# --------------------------------------------------------------------------- heads


class ConvHead(nn.Module):
    """1x1 conv (with bias) from the high-resolution branch to K heatmaps."""

    def __init__(self, in_channels: int, low_order_channels: int, num_joints: int):
        super().__init__()
        self.final = nn.Conv2d(in_channels, num_joints, 1)

    def forward(self, x: torch.Tensor, low_order: torch.Tensor) -> torch.Tensor:
        return self.final(x)


class DASPHead(nn.Module):
    """SDHRNet's DASP: dense atrous pyramid on the high-resolution map, fused with the
    stage-1 (low-order) features: K1(K1([K1(llf), K1(y_l)])) (paper Eq. 19)."""

    def __init__(self, in_channels: int, low_order_channels: int, num_joints: int,
                 growth: int = 16, fuse_channels: int = 32):
        super().__init__()
        self.pyramid = DenseAtrousPyramid(in_channels, growth)
        self.low_order = ConvBNAct(low_order_channels, fuse_channels, 1)
        self.context = ConvBNAct(self.pyramid.out_channels, fuse_channels, 1)
        self.fuse = ConvBNAct(2 * fuse_channels, fuse_channels, 1)
        self.final = nn.Conv2d(fuse_channels, num_joints, 1)

    def forward(self, x: torch.Tensor, low_order: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.low_order(low_order), self.context(self.pyramid(x))], dim=1)
        return self.final(self.fuse(y))


HeadFactory = Callable[[int, int, int], nn.Module]


# --------------------------------------------------------------------------- skeleton


def _fuse_path(widths: Sequence[int], src: int, dst: int) -> nn.Module:
    """The path from branch ``src`` to branch ``dst`` in a fusion (HRNet's layout)."""
    if src > dst:  # lower resolution: 1x1 conv to the target width, upsampled in forward
        return ConvBNAct(widths[src], widths[dst], 1, act=None)
    steps = [ConvBNAct(widths[src], widths[src], 3, 2) for _ in range(dst - src - 1)]
    steps.append(ConvBNAct(widths[src], widths[dst], 3, 2, act=None))
    return nn.Sequential(*steps)


class HRModule(nn.Module):
    """Parallel branches of residual blocks, then multi-resolution fusion into every
    branch (or only the first with ``multi_scale_output=False``)."""

    def __init__(self, block: BlockFactory, widths: Sequence[int], num_blocks: int, multi_scale_output: bool = True):
        super().__init__()
        self.branches = nn.ModuleList(nn.Sequential(*(block(w) for _ in range(num_blocks))) for w in widths)
        num_out = len(widths) if multi_scale_output else 1
        self.fuse = nn.ModuleList(
            nn.ModuleList(nn.Identity() if src == dst else _fuse_path(widths, src, dst) for src in range(len(widths)))
            for dst in range(num_out)
        )

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        outs = []
        for dst, paths in enumerate(self.fuse):
            size = xs[dst].shape[-2:]
            total = xs[dst]
            for src, path in enumerate(paths):
                if src == dst:
                    continue
                y = path(xs[src])
                if src > dst:
                    # by size, not by 2^k: inputs not divisible by 32 give odd branch sizes
                    y = F.interpolate(y, size=size, mode="nearest")
                total = total + y
            outs.append(F.relu(total))
        return outs


class Transition(nn.Module):
    """Between stages: existing branches change width if needed, and one new branch
    (a 3x3/2 conv of the previous deepest branch) is added."""

    def __init__(self, in_widths: Sequence[int], out_widths: Sequence[int]):
        super().__init__()
        self.paths = nn.ModuleList(
            (nn.Identity() if i < len(in_widths) and in_widths[i] == w
             else ConvBNAct(in_widths[i], w, 3) if i < len(in_widths)
             else ConvBNAct(in_widths[-1], w, 3, 2))
            for i, w in enumerate(out_widths)
        )
        self.num_in = len(in_widths)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [path(xs[min(i, self.num_in - 1)]) for i, path in enumerate(self.paths)]


class HRNet(nn.Module):
    """The HRNet skeleton; see the module docstring.

    ``stage_blocks``: the residual block of each multi-resolution stage (a callable of the
    width). ``last_stage_entry``: an optional module built for the deepest width, applied
    to the new deepest branch as it enters the last stage (SDHRNet's SEM). ``head``:
    ``head(high_res_width, low_order_width, num_joints)``, called on the high-resolution
    output and the stage-1 features.
    """

    def __init__(
        self,
        stage_blocks: Sequence[BlockFactory],
        num_joints: int = 17,
        widths: Sequence[int] = WIDTHS_W32,
        num_modules: Sequence[int] = MODULES_PER_STAGE,
        num_blocks: int = BLOCKS_PER_BRANCH,
        last_stage_entry: BlockFactory | None = None,
        head: HeadFactory = ConvHead,
        init_std: float = 0.001,
    ):
        super().__init__()
        if len(stage_blocks) != len(num_modules) or len(widths) != len(num_modules) + 1:
            raise ValueError(f"HRNet: {len(stage_blocks)} stage blocks and {len(num_modules)} module counts need "
                             f"{len(num_modules) + 1} widths, got {len(widths)}")
        self.stem = nn.Sequential(ConvBNAct(3, STEM_WIDTH, 3, 2), ConvBNAct(STEM_WIDTH, STEM_WIDTH, 3, 2))
        low_order_width = 4 * STEM_WIDTH
        self.stage1 = nn.Sequential(Bottleneck(STEM_WIDTH, STEM_WIDTH),
                                    *(Bottleneck(low_order_width, STEM_WIDTH) for _ in range(3)))
        self.transitions = nn.ModuleList()
        self.stages = nn.ModuleList()
        prev = [low_order_width]
        last = len(num_modules) - 1
        for s, (block, count) in enumerate(zip(stage_blocks, num_modules)):
            cur = list(widths[: s + 2])
            self.transitions.append(Transition(prev, cur))
            self.stages.append(nn.Sequential(*(
                HRModule(block, cur, num_blocks, multi_scale_output=not (s == last and m == count - 1))
                for m in range(count)
            )))
            prev = cur
        self.last_stage_entry = last_stage_entry(widths[-1]) if last_stage_entry else nn.Identity()
        self.head = head(widths[0], low_order_width, num_joints)
        init_weights_normal(self, std=init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low_order = self.stage1(self.stem(x))
        xs = [low_order]
        last = len(self.stages) - 1
        for s, (transition, stage) in enumerate(zip(self.transitions, self.stages)):
            xs = transition(xs)
            if s == last:
                xs[-1] = self.last_stage_entry(xs[-1])
            xs = stage(xs)
        return self.head(xs[0], low_order)


# --------------------------------------------------------------------------- registry

# The papers' "GFLOPs" are MACs / 2^30 (HRNet's summary tool); the registry holds 1e9 units.
_PER_2_30 = 2.0**30 / 1e9


def _paper(params_m: float, gflops_2_30: float, note: str, input_size=(256, 192), num_joints: int = 17) -> PaperFigures:
    return PaperFigures(params_m, round(gflops_2_30 * _PER_2_30, 3), input_size=input_size, num_joints=num_joints,
                        note=f"{note}; published {gflops_2_30} GFLOPs = MACs / 2^30")


def _hrnet(block: BlockFactory, num_joints: int, **kw) -> HRNet:
    return HRNet([block] * len(MODULES_PER_STAGE), num_joints, **kw)


@register_model("hrnet_w32", output_kind="heatmap", tolerance=0.02, paper=[
    _paper(28.5, 7.1, "HRNet paper Table 1 (COCO)"),
    _paper(28.5, 9.5, "SDHRNet Table 1 (MPII)", (256, 256), 16),
])
def hrnet_w32(num_joints: int = 17, input_size=(256, 192), **kw) -> HRNet:
    """HRNet-W32: BasicBlocks in stages 2-4, 1x1 conv head on the high-resolution branch."""
    return _hrnet(BasicBlock, num_joints, **kw)


@register_model("sdhrnet", output_kind="heatmap", tolerance=0.05, paper=[
    _paper(16.8, 4.5, "SDHRNet Table 2 (COCO)"),
    _paper(16.8, 6.0, "SDHRNet Table 1 (MPII)", (256, 256), 16),
])
def sdhrnet(num_joints: int = 17, input_size=(256, 192), **kw) -> HRNet:
    """SDHRNet: SCR blocks, SEM before stage 4 on the 1/32 branch, DASP head."""
    return _hrnet(SCRBlock, num_joints, last_stage_entry=SemanticEnhancement, head=DASPHead, **kw)


@register_model("sdhrnet_scr", output_kind="heatmap", tolerance=0.05, paper=[
    _paper(16.7, 4.4, "SDHRNet Table 3 ablation: SCR only"),
])
def sdhrnet_scr(num_joints: int = 17, input_size=(256, 192), **kw) -> HRNet:
    """SDHRNet ablation: SCR blocks only (1x1 conv head, no SEM, no DASP)."""
    return _hrnet(SCRBlock, num_joints, **kw)


@register_model("sdhrnet_scr_dasp", output_kind="heatmap", tolerance=0.05, paper=[
    _paper(16.7, 4.5, "SDHRNet Table 3 ablation: SCR + DASP"),
])
def sdhrnet_scr_dasp(num_joints: int = 17, input_size=(256, 192), **kw) -> HRNet:
    """SDHRNet ablation: SCR blocks and the DASP head, no SEM."""
    return _hrnet(SCRBlock, num_joints, head=DASPHead, **kw)


@register_model("elhrnet", output_kind="heatmap", tolerance=0.05, paper=[
    _paper(5.0, 2.0, "EL-HRNet Table 2 (COCO)"),
    _paper(5.0, 2.66, "EL-HRNet Table 4 (MPII)", (256, 256), 16),
])
def elhrnet(num_joints: int = 17, input_size=(256, 192), **kw) -> HRNet:
    """EL-HRNet-W32: LA-Basicblocks (NConv3x3 + CBAM) in stages 2-4."""
    return _hrnet(LABasicBlock, num_joints, **kw)
