"""Target grids: Gaussians, the dense coordinate fields, a heatmap's highest cell."""

from __future__ import annotations

import torch


def test_decomposed_targets_average_to_the_joint_and_peak_at_it():
    from slimpose.heads.fields import decomposed_coordinate_targets

    target = torch.tensor([[[0.3, 0.7], [0.55, 0.25]]])
    goal = decomposed_coordinate_targets(target, 8, 6, sigma=1.0)
    assert goal.shape == (1, 2, 8, 6, 2)
    assert torch.allclose(goal.mean((2, 3)), target, atol=1e-6)
    # joint 0 lies left of and below the centre: its cell holds the largest offset
    offset = (goal[0, 0, ..., 0] - 0.5).abs()
    row, col = divmod(int(offset.argmax()), 6)
    assert (row, col) == (int(0.7 * 8), int(0.3 * 6))


def test_displacement_targets_average_to_the_joint_and_move_with_it():
    from slimpose.heads.fields import displacement_coordinate_targets

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
    from slimpose.heads.fields import half_plane_coordinate_targets

    target = torch.tensor([[[0.3, 0.7], [0.0, 1.0]]])
    goal = half_plane_coordinate_targets(target, 8, 6)
    assert goal.shape == (1, 2, 8, 6, 2)
    assert torch.allclose(goal.mean((2, 3)), target, atol=1e-6)
    # x = 0.3 is 1.8 columns: columns 0 is left of it, 0.8 of column 1 is, the rest is right of it
    assert torch.allclose(goal[0, 0, 5, :, 0], torch.tensor([1.0, 0.8, 0, 0, 0, 0]), atol=1e-6)
    # y = 0.7 is 5.6 rows: the same for every column, rows above it 1
    assert torch.allclose(goal[0, 0, :, 2, 1], torch.tensor([1, 1, 1, 1, 1, 0.6, 0, 0]), atol=1e-6)
    assert goal.min() >= 0 and goal.max() <= 1


def test_heatmap_argmax_joints_are_the_highest_cells_centres():
    from slimpose.heads.fields import heatmap_argmax_joints

    heatmaps = torch.zeros(2, 3, 8, 6)
    heatmaps[0, 0, 5, 2] = 1.0  # row 5, column 2
    heatmaps[1, 2, 0, 5] = 0.3
    heatmaps[1, 2, 7, 0] = 0.2
    joints = heatmap_argmax_joints(heatmaps)
    assert joints.shape == (2, 3, 2)
    assert torch.allclose(joints[0, 0], torch.tensor([2.5 / 6, 5.5 / 8]))
    assert torch.allclose(joints[1, 2], torch.tensor([5.5 / 6, 0.5 / 8]))
