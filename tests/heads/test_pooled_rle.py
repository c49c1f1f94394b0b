"""RepNet's pooled-RLE head: its options, the dense and heatmap terms beside RLE."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from slimpose.errors import ConfigError
from slimpose.heads import build_head
from slimpose.heads.fields import (decomposed_coordinate_targets, displacement_coordinate_targets, grid_gaussians,
                                   half_plane_coordinate_targets)
from slimpose.heads.pooled_rle import PooledRLEHead
from slimpose.models.flow import RealNVP
from slimpose.models.layers import TrainingOnly


class _Pooled(nn.Module):
    """Stands in for a pooled-regression model: a flow, optionally a heatmap decoder."""

    def __init__(self, decoder: bool = False):
        super().__init__()
        self.model_name = "stand_in"
        self.flow = TrainingOnly(RealNVP())
        self.heatmap_decoder = TrainingOnly(nn.Identity()) if decoder else None


def _head(decoder: bool = False, **options) -> PooledRLEHead:
    head = build_head("pooled_rle", options, heatmap_sigma=1.5)
    head.bind(_Pooled(decoder))
    return head


def _extra(head, outputs: dict, target, weight) -> float:
    """What the head adds to RLE for ``outputs``."""
    with torch.no_grad():
            return float(head(outputs, target, weight) - head.rle(outputs["joints"], target, weight))


def _joints(n: int, k: int) -> torch.Tensor:
    return torch.cat([torch.full((n, k, 2), 0.5), torch.full((n, k, 2), 0.3)], -1)


def _positions(field: torch.Tensor) -> torch.Tensor:
    """(N, K, H, W, 2) field → the model's (N, H, W, K, 4) per-position outputs."""
    field = field.permute(0, 2, 3, 1, 4)
    return torch.cat([field, torch.zeros_like(field)], -1)


def test_without_options_the_head_is_rle():
    head = _head()
    target, weight = torch.rand(2, 3, 2), torch.ones(2, 3)
    assert head.model_kwargs() == {}
    with torch.no_grad():
        assert float(head(_joints(2, 3), target, weight)) == float(head.rle(_joints(2, 3), target, weight))


def test_the_dense_term_adds_nothing_at_its_goal_and_weights_joints():
    head = _head(dense_weight=2.0)
    assert head.model_kwargs() == {"position_outputs": True}
    target = torch.rand(3, 4, 2) * 0.6 + 0.2
    goal = decomposed_coordinate_targets(target, 8, 6)
    exact = {"joints": _joints(3, 4), "positions": _positions(goal)}
    assert _extra(head, exact, target, torch.ones(3, 4)) == pytest.approx(0.0, abs=1e-6)
    off = {"joints": _joints(3, 4), "positions": _positions(goal + 0.1)}
    # (0.1^2 per coordinate, x and y summed) * 4 joints * weight 2, averaged over N
    assert _extra(head, off, target, torch.ones(3, 4)) == pytest.approx(0.08 * 2, rel=1e-4)
    assert _extra(head, off, target, torch.zeros(3, 4)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("form, norm, shift, expected", [
    ("displacement", "mse", 0.0, 0.0),
    ("half_plane", "l1", -0.1, 0.2 * 4 * 2),  # |0.1| per coordinate, x and y summed, 4 joints, weight 2
])
def test_the_dense_term_takes_other_fields_and_norms(form, norm, shift, expected):
    head = _head(dense_weight=2.0, dense_target=form, dense_norm=norm)
    target = torch.rand(3, 4, 2)
    field = (displacement_coordinate_targets if form == "displacement" else half_plane_coordinate_targets)(target, 8, 6)
    outputs = {"joints": _joints(3, 4), "positions": _positions(field + shift)}
    assert _extra(head, outputs, target, torch.ones(3, 4)) == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_the_heatmap_teacher_places_the_joint_at_the_heatmaps_maximum_without_gradient():
    head = _head(decoder=True, dense_weight=1.0, teacher="auxiliary_heatmaps", heatmap_weight=1e-9)
    label = torch.full((1, 2, 2), 0.5)
    heatmaps = torch.zeros(1, 2, 32, 24, requires_grad=True)
    with torch.no_grad():
        heatmaps[0, 0, 4, 20] = 1.0
        heatmaps[0, 1, 30, 1] = 1.0
    teacher = torch.tensor([[[20.5 / 24, 4.5 / 32], [1.5 / 24, 30.5 / 32]]])
    positions = _positions(decomposed_coordinate_targets(teacher, 8, 6)).requires_grad_()
    dense = head.dense_error(positions, heatmaps, label, torch.ones(1, 2))
    assert float(dense) == pytest.approx(0.0, abs=1e-6)  # the label's own field would cost a lot
    assert torch.autograd.grad(dense, heatmaps, allow_unused=True)[0] is None  # the teacher gets no gradient


def test_the_heatmap_term_is_the_weighted_heatmap_mse_on_gaussians_of_the_data_sigma():
    head = _head(decoder=True, heatmap_weight=10.0)
    target = torch.tensor([[[0.3, 0.6], [0.7, 0.2]]])
    goal = grid_gaussians(target, 16, 12, 1.5)
    exact = {"joints": _joints(1, 2), "heatmaps": goal.clone()}
    assert _extra(head, exact, target, torch.ones(1, 2)) == pytest.approx(0.0, abs=1e-6)
    # KeypointMSELoss: 0.5 * 0.2^2 averaged over every cell; the second joint is unlabelled
    off = {"joints": _joints(1, 2), "heatmaps": goal + 0.2}
    assert _extra(head, off, target, torch.tensor([[1.0, 0.0]])) == pytest.approx(10.0 * 0.5 * 0.04 / 2, rel=1e-4)


@pytest.mark.parametrize("options, message", [
    ({"dense_sigma": 0.0}, r"model.head.dense_sigma: must be positive"),
    ({"dense_target": "offset"}, r"model.head.dense_target: must be one of gaussian, displacement, half_plane"),
    ({"dense_norm": "huber"}, r"model.head.dense_norm: must be one of mse, l1"),
    ({"teacher": "label"}, r"model.head.teacher: must be one of ground_truth, auxiliary_heatmaps"),
    ({"teacher": "auxiliary_heatmaps"}, r"model.head.teacher: 'auxiliary_heatmaps' needs the heatmaps trained"),
    ({"heatmap_weight": -1.0}, r"model.head.heatmap_weight: must be 0 or more"),
    ({"refit_crops": -1}, r"model.head.refit_crops: must be 0 or more"),
    ({"refit_huber": -0.1}, r"model.head.refit_huber: must be 0 or more"),
    ({"refit_ridge": 0.0}, r"model.head.refit_ridge: must be positive"),
    ({"dense_weight": "lots"}, r"model.head.dense_weight: expected a number"),
    ({"dense": 1.0}, r"model.head: unknown field\(s\) dense"),
])
def test_options_out_of_their_domain_name_the_field(options, message):
    with pytest.raises(ConfigError, match=message):
        build_head("pooled_rle", options)


def test_the_head_and_the_models_decoder_must_agree():
    with pytest.raises(ConfigError, match=r"model.head.heatmap_weight: the model has no training-only heatmap decoder"):
        _head(decoder=False, heatmap_weight=1.0)
    with pytest.raises(ConfigError, match=r"model.kwargs.auxiliary_heatmaps: the heatmap decoder is trained only by"):
        _head(decoder=True)


def test_heads_without_options_refuse_them():
    with pytest.raises(ConfigError, match=r"model.head: HeatmapHead takes no options, got dense_weight"):
        build_head("heatmap", {"dense_weight": 1.0})
