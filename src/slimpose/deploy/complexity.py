"""Parameters and multiply-accumulates (MACs) as the papers count them.

"GFLOPs" in all five papers and in the HRNet/LPN/MMPose code means MACs of conv and
linear layers; normalisation, activation, pooling and element-wise ops are not counted.
A deconvolution counts its weights once per *input* pixel.
"""

from __future__ import annotations

import torch
import torch.nn as nn

GIGA = 1e9
GIBI = 2.0**30


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _conv_macs(m: nn.Conv2d, out: torch.Tensor) -> int:
    kh, kw = m.kernel_size
    return out.numel() // out.shape[0] * (m.in_channels // m.groups) * kh * kw


def _deconv_macs(m: nn.ConvTranspose2d, inp: torch.Tensor) -> int:
    kh, kw = m.kernel_size
    h, w = inp.shape[-2:]
    return m.in_channels * (m.out_channels // m.groups) * kh * kw * h * w


def _linear_macs(m: nn.Linear, out: torch.Tensor) -> int:
    rows = out.numel() // out.shape[-1] // out.shape[0] if out.dim() > 1 else 1
    return rows * m.in_features * m.out_features


@torch.no_grad()
def count_macs(model: nn.Module, input_size: tuple[int, int], in_channels: int = 3) -> int:
    """MACs of one forward pass on a single (1, C, H, W) input."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            total += _conv_macs(module, output)
        elif isinstance(module, nn.ConvTranspose2d):
            total += _deconv_macs(module, inputs[0])
        elif isinstance(module, nn.Linear):
            total += _linear_macs(module, output)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        model(torch.zeros(1, in_channels, *input_size, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total
