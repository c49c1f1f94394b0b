"""The RLE loss of coordinate models."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from slimpose.heads.rle import RLELoss

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pred(mu: torch.Tensor, sigma: float) -> torch.Tensor:
    return torch.cat([mu, torch.full_like(mu, sigma)], dim=-1)


def test_loss_falls_as_prediction_approaches_target():
    torch.manual_seed(0)
    loss_fn = RLELoss()
    target = torch.rand(4, 17, 2)
    direction = torch.randn(4, 17, 2)
    weight = torch.ones(4, 17)
    with torch.no_grad():
        losses = [loss_fn(_pred(target + d * direction, 0.1), target, weight).item() for d in (0.3, 0.2, 0.1, 0.05, 0.0)]
    assert all(a > b for a, b in zip(losses, losses[1:])), losses


def test_loss_value_weights_and_averaging():
    torch.manual_seed(0)
    loss_fn = RLELoss()
    target = torch.rand(3, 5, 2)
    mu = target + 0.05 * torch.randn(3, 5, 2)
    pred = torch.cat([mu, torch.rand(3, 5, 2) * 0.5 + 0.1], dim=-1)
    weight = torch.ones(3, 5)
    weight[0, 1] = 0.0
    with torch.no_grad():
        loss = loss_fn(pred, target, weight)
        sigma = pred[..., 2:]
        x_bar = (target - mu) / sigma
        log_g = loss_fn.flow_model.log_prob(x_bar.reshape(-1, 2)).reshape(3, 5)
        per_joint = (torch.log(sigma) + math.log(2) + x_bar.abs()).sum(-1) - log_g
        expected = (per_joint * weight).sum() / 3
        # an unlabelled joint contributes nothing, whatever its prediction
        pred2 = pred.clone()
        pred2[0, 1, :2] += 10.0
        loss2 = loss_fn(pred2, target, weight)
        loss_3d_weight = loss_fn(pred, target, weight[..., None])
    assert torch.allclose(loss, expected, atol=1e-5)
    assert torch.allclose(loss, loss2) and torch.allclose(loss, loss_3d_weight)
    assert RLELoss(size_average=False)(pred, target, weight).shape == ()
    with pytest.raises(ValueError):
        RLELoss(q_dis="cauchy")


@pytest.mark.parametrize("q_dis", ["laplace", "gaussian"])
def test_sigma_tracks_noise_scale_on_toy_regression(q_dis):
    """A linear model trained with RLE (flow trained jointly) predicts a larger sigma for
    the noisier half of the data."""
    torch.manual_seed(0)
    n = 256
    x = torch.rand(n, 2)
    group = (torch.arange(n) % 2).float()
    scale = torch.where(group > 0, 0.08, 0.02)
    a = torch.tensor([[0.6, -0.2], [0.3, 0.5]])
    if q_dis == "laplace":
        noise = torch.distributions.Laplace(0.0, 1.0).sample((n, 2))
    else:
        noise = torch.randn(n, 2)
    y = 0.2 + x @ a.T + noise * scale[:, None]
    feats = torch.cat([x, group[:, None]], dim=1)
    model = nn.Linear(3, 4)
    loss_fn = RLELoss(q_dis=q_dis)
    opt = torch.optim.Adam(list(model.parameters()) + list(loss_fn.parameters()), lr=3e-2)
    weight = torch.ones(n, 1)
    for _ in range(300):
        raw = model(feats)
        pred = torch.cat([raw[:, :2], raw[:, 2:].sigmoid()], dim=1)[:, None]
        loss = loss_fn(pred, y[:, None], weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        raw = model(feats)
        sigma = raw[:, 2:].sigmoid()
        err = (raw[:, :2] - y).abs()
    ratio = sigma[group > 0].mean() / sigma[group == 0].mean()
    assert ratio > 1.5, ratio.item()
    # the means are learnt too: the error is the noise, not the signal
    assert err[group == 0].mean() < 0.03 and err[group > 0].mean() < 0.1
