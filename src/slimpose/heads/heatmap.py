"""The heatmap head: mean squared error between predicted and target heatmaps."""

from __future__ import annotations

import torch
import torch.nn as nn

from slimpose.heads.base import Head


class KeypointMSELoss(nn.Module):
    """Mean squared error between heatmaps, averaged over joints (HRNet's JointsMSELoss).

    ``target_weight`` zeroes unlabelled joints; optional per-joint ``joint_weights``
    (the layout's) scale the weight further. The 0.5 factor keeps HRNet's loss scale.
    """

    def __init__(self, use_target_weight: bool = True, joint_weights: torch.Tensor | None = None):
        super().__init__()
        self.use_target_weight = use_target_weight
        self.register_buffer("joint_weights", joint_weights if joint_weights is not None else torch.ones(0), persistent=False)

    def forward(self, output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
        n, k = output.shape[:2]
        diff = (output.reshape(n, k, -1) - target.reshape(n, k, -1)) ** 2
        weight = target_weight.reshape(n, k, 1) if self.use_target_weight else torch.ones_like(diff[..., :1])
        if self.joint_weights.numel():
            weight = weight * self.joint_weights.reshape(1, k, 1)
        return 0.5 * (diff * weight).mean()


class HeatmapHead(Head):
    """Heatmap models (SimpleBaseline, HRNet, LPN, ...): HRNet's weighted heatmap MSE."""

    def __init__(self, options: dict | None = None, heatmap_sigma: float = 2.0):
        super().__init__(options, heatmap_sigma)
        self.mse = KeypointMSELoss(use_target_weight=True)

    def forward(self, outputs: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
        return self.mse(outputs.float(), target, target_weight)
