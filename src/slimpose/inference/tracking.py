"""Keeping people across video frames: One-Euro smoothing, pose-guided boxes, track ids.

numpy only. The tracker follows MediaPipe's and MoveNet's approach: each person's box in
the next frame is the box of this frame's confident keypoints, so the detector only has
to run every N frames or when a person is lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from slimpose.errors import SlimposeError
from slimpose.metrics.coco import oks_iou


class OneEuroFilter:
    """The 1-Euro filter (Casiez, Roussel, Vogel, CHI 2012), element-wise on arrays.

    An exponential low-pass whose cutoff rises with speed: cutoff = ``min_cutoff`` +
    ``beta`` * |smoothed speed| (Hz), the speed itself low-passed at ``d_cutoff``. Slow
    movement is smoothed hard (no jitter), fast movement barely (no lag).

    ``scale`` divides the speed before it sets the cutoff, so that one ``beta`` suits a
    person 100 px and 1000 px tall (MediaPipe's velocity scale does the same).
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0):
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise SlimposeError(f"One-Euro filter: min_cutoff and d_cutoff must be > 0 and beta >= 0 "
                             f"(got {min_cutoff}, {d_cutoff}, {beta})")
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.x_prev: np.ndarray | None = None
        self.dx_prev: np.ndarray | None = None
        self.t_prev: float | None = None

    @staticmethod
    def _alpha(cutoff, dt: float):
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x, t: float, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.x_prev is None or self.t_prev is None or t <= self.t_prev:
            self.x_prev, self.dx_prev, self.t_prev = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self.t_prev
        dx = (x - self.x_prev) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        dx_hat = a_d * dx + (1 - a_d) * self.dx_prev
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat) / max(float(scale), 1e-9)
        a = self._alpha(cutoff, dt)
        x_hat = a * x + (1 - a) * self.x_prev
        self.x_prev, self.dx_prev, self.t_prev = x_hat, dx_hat, float(t)
        return x_hat.copy()


def keypoint_box(keypoints: np.ndarray, scores: np.ndarray, thr: float, expand: float = 1.2,
                 min_keypoints: int = 3) -> np.ndarray | None:
    """Box xyxy of the keypoints scored above ``thr``, grown by ``expand`` about its
    centre (keypoints stop short of the head top, hands and feet); None when fewer than
    ``min_keypoints`` are confident."""
    pts = np.asarray(keypoints, np.float64)[np.asarray(scores) > thr]
    if len(pts) < min_keypoints:
        return None
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    center, half = (lo + hi) / 2, (hi - lo) / 2 * expand
    # A straight line of keypoints (arm held out) must still give a box with area.
    half = np.maximum(half, 0.25 * half.max())
    return np.concatenate([center - half, center + half])


def _areas(boxes: np.ndarray) -> np.ndarray:
    return np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)


def _intersections(a, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    return np.prod(np.clip(rb - lt, 0, None), axis=2), _areas(a), _areas(b)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xyxy boxes."""
    inter, area_a, area_b = _intersections(a, b)
    union = area_a[:, None] + area_b[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def box_inside(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)): the fraction of each box of ``a`` that lies inside each of ``b``."""
    inter, area_a, _ = _intersections(a, b)
    return np.where(area_a[:, None] > 0, inter / np.maximum(area_a[:, None], 1e-9), 0.0)


def pose_similarity(kpts_a, scores_a, boxes_a, kpts_b, scores_b, boxes_b, sigmas, thr: float) -> np.ndarray:
    """(len(a), len(b)) similarity of tracks ``a`` to people ``b``: the larger of the
    fraction of a track's box inside a person's box and the keypoint OKS (joints
    confident in both poses, scale = mean box area). The box term holds for a person
    whose pose changes fast, and for a detection box larger than the keypoints' box;
    OKS keeps two overlapping people apart."""
    sim = box_inside(boxes_a, boxes_b)
    if not len(kpts_a) or not len(kpts_b):
        return sim
    area_a = np.prod(boxes_a[:, 2:] - boxes_a[:, :2], axis=1)
    area_b = np.prod(boxes_b[:, 2:] - boxes_b[:, :2], axis=1)
    full_b = np.concatenate([kpts_b, scores_b[..., None]], axis=2)
    for i in range(len(kpts_a)):
        full_a = np.concatenate([kpts_a[i], scores_a[i][:, None]], axis=1)
        sim[i] = np.maximum(sim[i], oks_iou(full_a, full_b, area_a[i], area_b, sigmas, vis_thr=thr))
    return sim


def greedy_match(similarity: np.ndarray, thr: float) -> list[tuple[int, int]]:
    """Pairs (row, col) taken best first while their similarity is at least ``thr``."""
    sim = np.array(similarity, dtype=np.float64)
    pairs = []
    while sim.size and sim.max() >= thr:
        i, j = np.unravel_index(int(np.argmax(sim)), sim.shape)
        pairs.append((int(i), int(j)))
        sim[i, :] = -1
        sim[:, j] = -1
    return pairs


@dataclass
class Track:
    id: int
    box: np.ndarray  # xyxy to find the person in next (from the last pose)
    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    score: float = 1.0  # the box score it started from, carried while tracked
    filter: OneEuroFilter | None = None
    missed: int = 0  # detector runs in a row that did not confirm this person


@dataclass
class PoseTracks:
    """Track ids across frames. ``update`` takes this frame's people (keypoints, scores,
    the boxes xyxy they were found in, the boxes to follow them in next, box scores) and
    returns each one's track, starting new tracks for people matched to none and ending
    tracks matched by no one."""

    sigmas: np.ndarray
    kpt_thr: float = 0.3
    match_thr: float = 0.3
    tracks: list[Track] = field(default_factory=list)
    next_id: int = 0

    def update(self, keypoints: np.ndarray, scores: np.ndarray, boxes: np.ndarray, next_boxes: np.ndarray,
               box_scores: np.ndarray) -> list[Track]:
        prev = self.tracks
        sim = pose_similarity(np.asarray([t.keypoints for t in prev]).reshape(-1, *keypoints.shape[1:]),
                              np.asarray([t.keypoint_scores for t in prev]).reshape(-1, scores.shape[1]),
                              np.asarray([t.box for t in prev]).reshape(-1, 4),
                              keypoints, scores, boxes, self.sigmas, self.kpt_thr)
        owner = {j: prev[i] for i, j in greedy_match(sim, self.match_thr)}
        tracks = []
        for j in range(len(keypoints)):
            track = owner.get(j)
            if track is None:
                track = Track(self.next_id, next_boxes[j], keypoints[j], scores[j])
                self.next_id += 1
            track.box, track.keypoints, track.keypoint_scores = next_boxes[j], keypoints[j], scores[j]
            track.score = float(box_scores[j])
            tracks.append(track)
        self.tracks = tracks
        return tracks

    def reset(self) -> None:
        self.tracks, self.next_id = [], 0
