"""slimpose.drawing: skeletons, boxes and picture grids."""

import numpy as np
import pytest

from slimpose.drawing import LEFT_BGR, MIDDLE_BGR, RIGHT_BGR, draw_box, draw_pose, make_grid
from slimpose.keypoints import get_layout


def _lsp_pose():
    layout = get_layout("lsp")
    rng = np.random.default_rng(0)
    return layout, rng.uniform(20, 180, size=(layout.num_keypoints, 2))


def test_draw_pose_colours_joints_by_side_and_leaves_low_scores_out():
    layout, kpts = _lsp_pose()
    scores = np.ones(layout.num_keypoints)
    hidden = layout.names.index("left_wrist")
    scores[hidden] = 0.1
    image = np.zeros((200, 200, 3), np.uint8)
    drawn = draw_pose(image, kpts, scores, layout, thr=0.3, radius=4, thickness=1)
    assert not image.any(), "the input is copied, not drawn on"
    checked = 0
    for j, name in enumerate(layout.names):
        x, y = (int(round(v)) for v in kpts[j])
        if j == hidden:
            continue
        want = LEFT_BGR if name.startswith("left") else RIGHT_BGR if name.startswith("right") else MIDDLE_BGR
        # the joint dot is drawn last: its centre has the side's colour unless a later dot covers it
        covered = any(np.hypot(*(kpts[i] - kpts[j])) < 7 for i in range(j + 1, layout.num_keypoints)
                      if i != hidden)
        if not covered:
            assert tuple(int(v) for v in drawn[y, x]) == want, name
            checked += 1
    assert checked >= 8
    x, y = (int(round(v)) for v in kpts[hidden])
    near = [np.hypot(*(kpts[i] - kpts[hidden])) for i in range(layout.num_keypoints) if i != hidden]
    if min(near) > 10:
        assert tuple(int(v) for v in drawn[y, x]) not in (LEFT_BGR, RIGHT_BGR, MIDDLE_BGR)


def test_draw_pose_refuses_a_wrong_joint_count():
    layout, kpts = _lsp_pose()
    with pytest.raises(ValueError, match="layout 'lsp'"):
        draw_pose(np.zeros((50, 50, 3), np.uint8), kpts[:-1], np.ones(len(kpts) - 1), layout)


def test_draw_box_draws_in_place():
    image = np.zeros((40, 40, 3), np.uint8)
    out = draw_box(image, [5, 6, 20, 10], color=(0, 0, 255))
    assert out is image
    for y, x in ((6, 15), (16, 15), (11, 5), (11, 25)):  # on the four sides (anti-aliased)
        assert image[y, x, 2] > 150 and not image[y, x, :2].any(), (y, x)
    assert not image[11, 15].any(), "the inside stays empty"


def test_make_grid_tiles_and_centres_images():
    a = np.full((10, 20, 3), 200, np.uint8)
    b = np.full((4, 6), 100, np.uint8)  # grey images are converted
    grid = make_grid([a, b, a], cols=2, pad=2, background=(1, 2, 3))
    assert grid.shape == (2 * 10 + 3 * 2, 2 * 20 + 3 * 2, 3)
    assert (grid[2:12, 2:22] == 200).all()
    # b sits in the middle of the second cell
    y, x = 2 + (10 - 4) // 2, 2 + 20 + 2 + (20 - 6) // 2
    assert (grid[y:y + 4, x:x + 6] == 100).all()
    assert tuple(grid[0, 0]) == (1, 2, 3)
    with pytest.raises(ValueError, match="no images"):
        make_grid([])
