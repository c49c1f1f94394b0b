"""The RLE head of coordinate models: residual log-likelihood estimation (Li et al., ICCV
2021), whose flow is the model's training-only ``flow``."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from slimpose.errors import ConfigError
from slimpose.heads.base import Head
from slimpose.models.flow import RealNVP


class RLELoss(nn.Module):
    """Residual log-likelihood estimation loss for coordinate models.

    ``pred`` is the model output (N, K, 4): normalised coordinates mu (0:2) and sigma
    (2:4, already through the model's sigmoid); ``target`` (N, K, 2) normalised
    coordinates; ``target_weight`` (N, K) (or (N, K, 1)). With x_bar = (gt - mu) / sigma
    the loss of one joint is the negative log-likelihood of paper Eq. (13) (RLE paper
    Eq. 10; RepNet paper Eq. 13):

        sum_{x,y} [log sigma + log 2 + |x_bar|]  -  log G(x_bar)      (q_dis="laplace")
        sum_{x,y} [log sigma + log sqrt(2 pi) + x_bar^2 / 2] - log G(x_bar)  (q_dis="gaussian")
        sum_{x,y} log sigma  -  log G(x_bar)                               (residual=False)

    G is the RealNVP density of the 2-D x_bar, evaluated once per joint. The result is
    weighted by ``target_weight`` and, with ``size_average``, divided by N (MMPose:
    ``loss /= len(loss)`` then ``sum``).

    Choice of Q term (SPEC "known pitfall"): the official RLE code uses
    log(sigma * sqrt(2 pi)) + |e| / (sqrt(2) sigma), a Laplace exponent with a Gaussian
    normaliser, which is not the paper's Q. We use the paper's Laplace Q, the same Q
    term as MMPose's RLELoss (log(2 sigma) + |x_bar|). Note that both code bases also add
    an ``nf_loss = log sigma - log G`` term whose log G is broadcast over x and y, so their
    sum counts log sigma and log G twice; we keep the single count of the paper's
    likelihood (a proper NLL, whose optimal sigma is the mean absolute error, e.g.
    sigma -> b for Laplace noise of scale b). The sign of x_bar follows the paper
    (gt - mu); MMPose uses (mu - gt), which only mirrors the learnt G.

    ``flow``: the model's own RealNVP (RepNet keeps it as ``model.flow``), so that it is
    optimised, checkpointed and identical across DDP ranks with the model; without one
    the loss makes its own (for use outside the trainer).
    """

    def __init__(self, use_target_weight: bool = True, size_average: bool = True, residual: bool = True,
                 q_dis: str = "laplace", flow: RealNVP | None = None):
        super().__init__()
        if q_dis not in ("laplace", "gaussian"):
            raise ValueError(f"q_dis must be 'laplace' or 'gaussian', got {q_dis!r}")
        self.use_target_weight = use_target_weight
        self.size_average = size_average
        self.residual = residual
        self.q_dis = q_dis
        self.flow_model = flow if flow is not None else RealNVP()

    def forward(self, pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor | None = None) -> torch.Tensor:
        n, k = target.shape[:2]
        mu = pred[..., :2]
        sigma = pred[..., 2:4].clamp_min(1e-9)
        x_bar = (target - mu) / sigma
        log_g = self.flow_model.log_prob(x_bar.reshape(-1, 2)).reshape(n, k)
        per_coord = torch.log(sigma)
        if self.residual:
            if self.q_dis == "laplace":
                per_coord = per_coord + math.log(2.0) + x_bar.abs()
            else:
                per_coord = per_coord + 0.5 * math.log(2 * math.pi) + 0.5 * x_bar**2
        loss = per_coord.sum(dim=-1) - log_g  # (N, K)
        if self.use_target_weight:
            if target_weight is None:
                raise ValueError("RLELoss(use_target_weight=True) needs target_weight")
            loss = loss * target_weight.reshape(n, k).to(loss.dtype)
        loss = loss.sum()
        return loss / n if self.size_average else loss


class RLEHead(Head):
    """Coordinate models whose output is (N, K, 4): mu and sigma, trained with RLE."""

    def __init__(self, options: dict | None = None, heatmap_sigma: float = 2.0):
        super().__init__(options, heatmap_sigma)
        self.rle: RLELoss | None = None

    def bind(self, model: nn.Module) -> None:
        flow = getattr(model, "flow", None)
        if flow is None:
            # A flow the optimiser does not see would stay at its initialisation.
            raise ConfigError(f"model.name: {model.model_name!r} outputs coordinates but has no `flow` module "
                              f"for the RLE loss")
        self.rle = RLELoss(use_target_weight=True, flow=flow.module)

    def forward(self, outputs: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
        return self.rle(outputs.float(), target, target_weight)
