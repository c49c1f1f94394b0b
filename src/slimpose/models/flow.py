"""RealNVP, the normalising flow of RLE (residual log-likelihood estimation, Li et al.,
ICCV 2021): a trainable density on R^2 that a coordinate model keeps as a training-only
module (``TrainingOnly``), so the optimiser, checkpoints and DDP cover it with the model.
The loss that reads it is :class:`slimpose.heads.rle.RLELoss`."""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def _rle_scale_net(hidden: int = 64) -> nn.Sequential:
    return nn.Sequential(nn.Linear(2, hidden), nn.LeakyReLU(), nn.Linear(hidden, hidden), nn.LeakyReLU(),
                         nn.Linear(hidden, 2), nn.Tanh())


def _rle_translation_net(hidden: int = 64) -> nn.Sequential:
    return nn.Sequential(nn.Linear(2, hidden), nn.LeakyReLU(), nn.Linear(hidden, hidden), nn.LeakyReLU(),
                         nn.Linear(hidden, 2))


class RealNVP(nn.Module):
    """RealNVP density on R^2 (Dinh et al.), the flow G of RLE.

    ``num_layers`` affine coupling layers with alternating masks [0, 1], [1, 0], ...; each
    has a scale net s (Linear(2,64)-LeakyReLU-Linear(64,64)-LeakyReLU-Linear(64,2), tanh)
    and a translation net t (the same without tanh). Prior N(0, I). Weights are initialised
    as in the official RLE code (Xavier-uniform, gain 0.01), so the flow starts close to the
    identity and G close to the standard normal density.
    """

    def __init__(self, num_layers: int = 6, hidden: int = 64):
        super().__init__()
        if num_layers % 2:
            raise ValueError("RealNVP needs an even number of coupling layers (alternating masks)")
        masks = torch.tensor([[0.0, 1.0], [1.0, 0.0]] * (num_layers // 2))
        self.register_buffer("mask", masks)
        self.s = nn.ModuleList([_rle_scale_net(hidden) for _ in range(num_layers)])
        self.t = nn.ModuleList([_rle_translation_net(hidden) for _ in range(num_layers)])
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, gain=0.01)
                nn.init.zeros_(m.bias)

    def backward_p(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map data x (M, 2) to the latent z; also return log|det dz/dx| (M,)."""
        log_det = x.new_zeros(x.shape[0])
        z = x
        for i in reversed(range(len(self.t))):
            mask = self.mask[i]
            z_ = mask * z
            s = self.s[i](z_) * (1 - mask)
            t = self.t[i](z_) * (1 - mask)
            z = (1 - mask) * (z - t) * torch.exp(-s) + z_
            log_det = log_det - s.sum(dim=1)
        return z, log_det

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log G(x) for x of shape (M, 2): the prior's log density at z plus the log-Jacobian."""
        z, log_det = self.backward_p(x)
        log_prior = -0.5 * (z**2).sum(dim=1) - math.log(2 * math.pi)
        return log_prior + log_det
