"""RLE loss and its RealNVP flow; the dense form of a pooled regression."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from slimpose.losses import RealNVP, RLELoss


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _grid(lo: float = -8.0, hi: float = 8.0, step: float = 0.05) -> torch.Tensor:
    g = torch.arange(lo, hi + step / 2, step, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


@pytest.mark.parametrize("gain", [None, 1.0])
def test_flow_density_integrates_to_one(gain):
    torch.manual_seed(0)
    flow = RealNVP().double()
    if gain is not None:  # a flow far from the identity, so the check is not just N(0, I)
        for m in flow.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, gain=gain)
                nn.init.uniform_(m.bias, -0.3, 0.3)
    pts = _grid()
    with torch.no_grad():
        density = flow.log_prob(pts).exp()
    total = density.sum().item() * 0.05**2
    assert abs(total - 1.0) < 0.02, total
    if gain is not None:
        std_normal = torch.exp(-0.5 * (pts**2).sum(1)) / (2 * math.pi)
        assert (density - std_normal).abs().max() > 0.01


def test_flow_structure():
    flow = RealNVP()
    assert len(flow.s) == len(flow.t) == 6
    assert flow.mask.tolist() == [[0, 1], [1, 0]] * 3
    assert isinstance(flow.s[0][-1], nn.Tanh) and not isinstance(flow.t[0][-1], nn.Tanh)
    assert flow.log_prob(torch.zeros(5, 2)).shape == (5,)


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


def test_decomposed_targets_average_to_the_joint_and_peak_at_it():
    from slimpose.losses import decomposed_coordinate_targets

    target = torch.tensor([[[0.3, 0.7], [0.55, 0.25]]])
    goal = decomposed_coordinate_targets(target, 8, 6, sigma=1.0)
    assert goal.shape == (1, 2, 8, 6, 2)
    assert torch.allclose(goal.mean((2, 3)), target, atol=1e-6)
    # joint 0 lies left of and below the centre: its cell holds the largest offset
    offset = (goal[0, 0, ..., 0] - 0.5).abs()
    row, col = divmod(int(offset.argmax()), 6)
    assert (row, col) == (int(0.7 * 8), int(0.3 * 6))


def test_displacement_targets_average_to_the_joint_and_move_with_it():
    from slimpose.losses import displacement_coordinate_targets

    target = torch.tensor([[[0.3, 0.7]]])
    goal = displacement_coordinate_targets(target, 8, 6)
    assert goal.shape == (1, 1, 8, 6, 2)
    assert torch.allclose(goal.mean((2, 3)), target, atol=1e-6)
    # the top-left cell (centre 1/12, 1/16) holds 0.5 + the joint's displacement from it
    assert torch.allclose(goal[0, 0, 0, 0], torch.tensor([0.5 + 0.3 - 1 / 12, 0.5 + 0.7 - 1 / 16]))
    # moving the joint one cell right and down moves the field with it: no absolute position
    moved = displacement_coordinate_targets(target + torch.tensor([1 / 6, 1 / 8]), 8, 6)
    assert torch.allclose(moved[0, 0, 1:, 1:], goal[0, 0, :-1, :-1], atol=1e-6)


def test_half_plane_targets_average_to_the_joint_and_tell_the_side():
    from slimpose.losses import half_plane_coordinate_targets

    target = torch.tensor([[[0.3, 0.7], [0.0, 1.0]]])
    goal = half_plane_coordinate_targets(target, 8, 6)
    assert goal.shape == (1, 2, 8, 6, 2)
    assert torch.allclose(goal.mean((2, 3)), target, atol=1e-6)
    # x = 0.3 is 1.8 columns: columns 0 is left of it, 0.8 of column 1 is, the rest is right of it
    assert torch.allclose(goal[0, 0, 5, :, 0], torch.tensor([1.0, 0.8, 0, 0, 0, 0]), atol=1e-6)
    # y = 0.7 is 5.6 rows: the same for every column, rows above it 1
    assert torch.allclose(goal[0, 0, :, 2, 1], torch.tensor([1, 1, 1, 1, 1, 0.6, 0, 0]), atol=1e-6)
    assert goal.min() >= 0 and goal.max() <= 1


class _Pooled(torch.nn.Module):
    """Stands in for a pooled-regression model: the loss reads its ``position_outputs``."""

    position_outputs = None


def _no_base_loss(pred, target, weight):  # the dense term alone
    return pred.sum() * 0


def test_decomposed_regression_loss_adds_nothing_at_its_goal_and_weights_joints():
    from slimpose.losses import DecomposedRegressionLoss, decomposed_coordinate_targets

    model = _Pooled()
    loss = DecomposedRegressionLoss(_no_base_loss, model, weight=2.0)
    assert model.keep_position_outputs
    target = torch.rand(3, 4, 2) * 0.6 + 0.2
    weight = torch.ones(3, 4)
    goal = decomposed_coordinate_targets(target, 8, 6).permute(0, 2, 3, 1, 4)  # (N, H, W, K, 2)
    model.position_outputs = torch.cat([goal, torch.zeros_like(goal)], -1)
    assert float(loss(torch.zeros(3, 4, 4), target, weight)) == pytest.approx(0.0, abs=1e-9)
    assert model.position_outputs is None
    model.position_outputs = torch.cat([goal + 0.1, torch.zeros_like(goal)], -1)
    # (0.1^2 per coordinate, x and y summed) * 4 joints * weight 2, averaged over N
    assert float(loss(torch.zeros(3, 4, 4), target, weight)) == pytest.approx(0.08 * 2, rel=1e-5)
    model.position_outputs = torch.cat([goal + 0.1, torch.zeros_like(goal)], -1)
    assert float(loss(torch.zeros(3, 4, 4), target, torch.zeros(3, 4))) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(RuntimeError, match="kept no position_outputs"):
        loss(torch.zeros(3, 4, 4), target, weight)


def test_decomposed_regression_loss_takes_the_displacement_form():
    from slimpose.losses import DecomposedRegressionLoss, displacement_coordinate_targets

    model = _Pooled()
    loss = DecomposedRegressionLoss(_no_base_loss, model, 1.0, form="displacement")
    target = torch.rand(2, 3, 2)
    goal = displacement_coordinate_targets(target, 4, 3).permute(0, 2, 3, 1, 4)
    model.position_outputs = torch.cat([goal, torch.zeros_like(goal)], -1)
    assert float(loss(torch.zeros(2, 3, 4), target, torch.ones(2, 3))) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="form must be one of"):
        DecomposedRegressionLoss(_no_base_loss, _Pooled(), 1.0, form="heatmap")


def test_decomposed_regression_loss_with_the_l1_norm():
    from slimpose.losses import DecomposedRegressionLoss, half_plane_coordinate_targets

    model = _Pooled()
    loss = DecomposedRegressionLoss(_no_base_loss, model, 2.0, form="half_plane", norm="l1")
    target = torch.rand(3, 4, 2)
    goal = half_plane_coordinate_targets(target, 8, 6).permute(0, 2, 3, 1, 4)
    model.position_outputs = torch.cat([goal - 0.1, torch.zeros_like(goal)], -1)
    # (|0.1| per coordinate, x and y summed) * 4 joints * weight 2, averaged over N
    assert float(loss(torch.zeros(3, 4, 4), target, torch.ones(3, 4))) == pytest.approx(0.2 * 4 * 2, rel=1e-5)
    with pytest.raises(ValueError, match="norm must be one of"):
        DecomposedRegressionLoss(_no_base_loss, _Pooled(), 1.0, norm="huber")


def test_heatmap_argmax_joints_are_the_highest_cells_centres():
    from slimpose.losses import heatmap_argmax_joints

    heatmaps = torch.zeros(2, 3, 8, 6)
    heatmaps[0, 0, 5, 2] = 1.0  # row 5, column 2
    heatmaps[1, 2, 0, 5] = 0.3
    heatmaps[1, 2, 7, 0] = 0.2
    joints = heatmap_argmax_joints(heatmaps)
    assert joints.shape == (2, 3, 2)
    assert torch.allclose(joints[0, 0], torch.tensor([2.5 / 6, 5.5 / 8]))
    assert torch.allclose(joints[1, 2], torch.tensor([5.5 / 6, 0.5 / 8]))


def test_decomposed_regression_loss_with_the_heatmap_teacher_places_the_joint_at_the_heatmaps_maximum():
    from slimpose.losses import DecomposedRegressionLoss, decomposed_coordinate_targets

    model = _Pooled()
    loss = DecomposedRegressionLoss(_no_base_loss, model, 1.0, teacher="auxiliary_heatmaps")
    label = torch.full((1, 2, 2), 0.5)
    heatmaps = torch.zeros(1, 2, 32, 24, requires_grad=True)
    with torch.no_grad():
        heatmaps[0, 0, 4, 20] = 1.0
        heatmaps[0, 1, 30, 1] = 1.0
    model.auxiliary_heatmaps = heatmaps
    teacher = torch.tensor([[[20.5 / 24, 4.5 / 32], [1.5 / 24, 30.5 / 32]]])
    goal = decomposed_coordinate_targets(teacher, 8, 6).permute(0, 2, 3, 1, 4)
    model.position_outputs = torch.cat([goal, torch.zeros_like(goal)], -1).requires_grad_()
    value = loss(torch.zeros(1, 2, 4), label, torch.ones(1, 2))
    assert float(value) == pytest.approx(0.0, abs=1e-9)  # the label's own field would cost a lot
    assert torch.autograd.grad(value, heatmaps, allow_unused=True)[0] is None  # the teacher gets no gradient
    model.auxiliary_heatmaps = None
    model.position_outputs = torch.zeros(1, 8, 6, 2, 4)
    with pytest.raises(RuntimeError, match="kept no heatmaps"):
        loss(torch.zeros(1, 2, 4), label, torch.ones(1, 2))
    with pytest.raises(ValueError, match="teacher must be one of"):
        DecomposedRegressionLoss(_no_base_loss, _Pooled(), 1.0, teacher="label")


def test_auxiliary_heatmap_loss_is_the_weighted_heatmap_mse_and_releases_the_maps():
    from slimpose.losses import AuxiliaryHeatmapLoss, grid_gaussians

    model = _Pooled()
    loss = AuxiliaryHeatmapLoss(_no_base_loss, model, weight=10.0, sigma=1.5)
    target = torch.tensor([[[0.3, 0.6], [0.7, 0.2]]])
    goal = grid_gaussians(target, 16, 12, 1.5)
    model.auxiliary_heatmaps = goal.clone()
    assert float(loss(torch.zeros(1, 2, 4), target, torch.ones(1, 2))) == pytest.approx(0.0, abs=1e-9)
    assert model.auxiliary_heatmaps is None
    model.auxiliary_heatmaps = goal + 0.2
    # KeypointMSELoss: 0.5 * 0.2^2 averaged over every cell; the second joint is unlabelled
    value = loss(torch.zeros(1, 2, 4), target, torch.tensor([[1.0, 0.0]]))
    assert float(value) == pytest.approx(10.0 * 0.5 * 0.04 / 2, rel=1e-5)
    with pytest.raises(RuntimeError, match="kept no auxiliary_heatmaps"):
        loss(torch.zeros(1, 2, 4), target, torch.ones(1, 2))
