"""One-Euro filter, pose-guided boxes, matching and track ids."""

from __future__ import annotations

import numpy as np
import pytest

from slimpose.errors import SlimposeError
from slimpose.inference.tracking import (MAX_LOST_FRAMES, OneEuroFilter, PoseTracks, box_iou,
                                         hungarian_match, keypoint_box, pose_similarity)
from slimpose.keypoints import get_layout

FPS = 30.0
# A 180 px person moving 120 px/s (0.67 heights/s), keypoints with 1.5 px of noise.
HEIGHT, SPEED, NOISE = 180.0, 120.0, 1.5
# With min_cutoff 1 Hz and beta 5 /(height/s): stated bounds for the tests below.
LAG_BOUND_PX = 4.0


def filtered(signal: np.ndarray, beta: float = 5.0) -> np.ndarray:
    f = OneEuroFilter(min_cutoff=1.0, beta=beta)
    return np.array([f(x, i / FPS, scale=HEIGHT) for i, x in enumerate(signal)])


def test_one_euro_lowers_jitter_of_a_constant_and_barely_lags_a_ramp():
    rng = np.random.default_rng(0)
    n = 90
    noisy = 100.0 + rng.normal(0, NOISE, n)
    out = filtered(noisy)
    assert out[15:].std() < 0.5 * noisy[15:].std()
    assert abs(out[15:].mean() - 100.0) < 0.5

    ramp = 100.0 + SPEED * np.arange(n) / FPS
    lag = ramp - filtered(ramp)
    assert (lag >= -1e-9).all() and lag[15:].max() < LAG_BOUND_PX, lag[15:].max()
    # beta is what keeps the lag small: a plain low-pass (beta 0) lags several times more
    assert (ramp - filtered(ramp, beta=0.0))[15:].max() > 3 * LAG_BOUND_PX

    # on a noisy ramp the frame-to-frame jitter (second difference) still halves
    noisy_ramp = ramp + rng.normal(0, NOISE, n)
    assert np.diff(filtered(noisy_ramp), 2)[15:].std() < 0.6 * np.diff(noisy_ramp, 2)[15:].std()


def test_one_euro_works_on_arrays_and_checks_parameters():
    f = OneEuroFilter(1.0, 1.0)
    x0 = np.zeros((17, 2))
    np.testing.assert_array_equal(f(x0, 0.0), x0)
    y = f(np.ones((17, 2)), 1 / FPS)
    assert y.shape == (17, 2) and (0 < y).all() and (y < 1).all()
    with pytest.raises(SlimposeError, match="min_cutoff"):
        OneEuroFilter(min_cutoff=0.0)


def test_keypoint_box_iou_and_matching():
    kpts = np.array([[10, 10], [30, 50], [20, 90], [500, 500]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    box = keypoint_box(kpts, scores, thr=0.3, expand=1.0)
    np.testing.assert_allclose(box, [10, 10, 30, 90])
    assert keypoint_box(kpts, scores, thr=0.75) is None  # two confident joints are not enough
    line = keypoint_box(np.array([[0, 0], [100, 0], [50, 0]], float), np.ones(3), thr=0.3, expand=1.0)
    assert line[3] - line[1] > 0  # a straight arm still gives a box with area
    iou = box_iou([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(iou, [[1.0, 1 / 3, 0.0]])


def test_track_ids_follow_people_across_frames():
    layout = get_layout("coco")
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 100, (17, 2))
    a, b = base + [50, 50], base + [400, 60]
    scores = np.full((2, 17), 0.9)
    tracks = PoseTracks(layout.sigmas_array())

    def boxes(*poses):
        return np.array([[p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()] for p in poses])

    ids0 = [t.id for t in tracks.update(np.stack([a, b]), scores, boxes(a, b), boxes(a, b), np.ones(2))]
    assert ids0 == [0, 1]
    # both move a little, listed in the other order: ids follow the people
    a2, b2 = a + 6, b - 4
    ids1 = [t.id for t in tracks.update(np.stack([b2, a2]), scores, boxes(b2, a2), boxes(b2, a2), np.ones(2))]
    assert ids1 == [1, 0]
    # one leaves, a new one appears far away: new id, the old one ends
    c = base + [200, 300]
    ids2 = [t.id for t in tracks.update(np.stack([a2 + 3, c]), scores, boxes(a2 + 3, c), boxes(a2 + 3, c), np.ones(2))]
    assert ids2 == [0, 2] and [t.id for t in tracks.tracks] == [0, 2]
    assert [t.id for t in tracks.lost] == [1]  # remembered for a while


def test_hungarian_matching_takes_the_best_total_not_the_best_pair():
    sim = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert hungarian_match(sim, 0.3) == [(0, 1), (1, 0)]  # greedy would take (0, 0) and leave row 1 alone
    assert hungarian_match(np.array([[0.9, 0.2]]), 0.3) == [(0, 0)]
    assert hungarian_match(np.array([[0.2, 0.1]]), 0.3) == []
    assert hungarian_match(np.zeros((0, 2)), 0.3) == []


def _person(offset, rng=np.random.default_rng(3), n=17):
    pose = np.random.default_rng(5).uniform(0, 100, (n, 2)) * [0.6, 1.6] + offset
    lo, hi = pose.min(axis=0), pose.max(axis=0)
    return pose, np.concatenate([lo, hi])


def test_oks_keeps_two_overlapping_people_apart():
    sigmas = get_layout("coco").sigmas_array()
    a, box_a = _person([100, 50])
    b, box_b = _person([130, 55])
    b = b[::-1]  # another pose in a box much like a's
    s = np.full((2, 17), 0.9)
    sim = pose_similarity(np.stack([a, b]), s, np.stack([box_a, box_b]), np.stack([b + 2, a + 2]), s,
                          np.stack([box_b, box_a]) + 2, sigmas, 0.3)
    assert sim[0, 1] > sim[0, 0] and sim[1, 0] > sim[1, 1]


def test_a_person_hidden_for_a_while_gets_their_id_back():
    """Two people walk; B is hidden for 20 frames (nobody reports them) and comes back
    where their walk took them: the lost track, moved on at its velocity, is matched."""
    tracks = PoseTracks(get_layout("coco").sigmas_array())
    s = np.full((2, 17), 0.9)
    for f in range(40):
        a, box_a = _person([50 + 3 * f, 40])
        b, box_b = _person([400 - 4 * f, 60])
        hidden = 10 <= f < 30
        kp, bx = (np.stack([a]), np.stack([box_a])) if hidden else (np.stack([a, b]), np.stack([box_a, box_b]))
        ids = [t.id for t in tracks.update(kp, s[:len(kp)], bx, bx, np.ones(len(kp)))]
        assert ids == ([0] if hidden else [0, 1]), f
    assert tracks.next_id == 2


def test_low_score_detections_continue_tracks_but_start_none_and_lost_tracks_expire():
    tracks = PoseTracks(get_layout("coco").sigmas_array())
    s = np.full((1, 17), 0.9)
    a, box = _person([50, 40])
    assert [t.id for t in tracks.update(a[None], s, box[None], box[None], np.array([0.9]))] == [0]
    # a low-score detection of the same person continues the track
    assert [t.id for t in tracks.update(a[None] + 1, s, box[None] + 1, box[None] + 1, np.array([0.35]))] == [0]
    # a low-score detection elsewhere starts nothing
    far, far_box = _person([400, 40])
    assert tracks.update(far[None], s, far_box[None], far_box[None], np.array([0.35])) == [None]
    assert tracks.tracks == [] and [t.id for t in tracks.lost] == [0]
    for _ in range(MAX_LOST_FRAMES):
        tracks.update(np.zeros((0, 17, 2)), np.zeros((0, 17)), np.zeros((0, 4)), np.zeros((0, 4)), np.zeros(0))
    assert tracks.lost == []  # forgotten after MAX_LOST_FRAMES frames unseen
