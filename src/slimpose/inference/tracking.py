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


# Association (ByteTrack-style, on poses): how long a lost track is remembered, the box
# score that separates the first matching round from the second, and the weight of the
# box term against keypoint OKS in the similarity.
MAX_LOST_FRAMES = 30
HIGH_SCORE = 0.5
BOX_WEIGHT = 0.5


def pose_similarity(kpts_a, scores_a, boxes_a, kpts_b, scores_b, boxes_b, sigmas, thr: float) -> np.ndarray:
    """(len(a), len(b)) similarity of tracks ``a`` to people ``b``: ``BOX_WEIGHT`` x box
    term + (1 - ``BOX_WEIGHT``) x keypoint OKS (metrics.coco.oks_iou on the joints
    confident in both poses, the layout's sigmas, scale = mean box area). The box term is
    the larger of IoU and the fraction of the track's box inside the person's box (a
    detection box is larger than a keypoint box); OKS keeps two overlapping people apart.
    Where the two poses share fewer than 3 confident joints, the box term alone."""
    boxes_a = np.asarray(boxes_a, np.float64).reshape(-1, 4)
    boxes_b = np.asarray(boxes_b, np.float64).reshape(-1, 4)
    sim = np.maximum(box_iou(boxes_a, boxes_b), box_inside(boxes_a, boxes_b))
    if not len(boxes_a) or not len(boxes_b):
        return sim
    scores_a, scores_b = np.asarray(scores_a), np.asarray(scores_b)
    area_a, area_b = _areas(boxes_a), _areas(boxes_b)
    full_b = np.concatenate([kpts_b, scores_b[..., None]], axis=2)
    shared = ((scores_a[:, None] > thr) & (scores_b[None] > thr)).sum(axis=2)
    oks = np.zeros_like(sim)
    for i in range(len(boxes_a)):
        full_a = np.concatenate([kpts_a[i], scores_a[i][:, None]], axis=1)
        oks[i] = oks_iou(full_a, full_b, area_a[i], area_b, sigmas, vis_thr=thr)
    return np.where(shared >= 3, BOX_WEIGHT * sim + (1 - BOX_WEIGHT) * oks, sim)


def hungarian_match(similarity: np.ndarray, thr: float) -> list[tuple[int, int]]:
    """Pairs (row, col) of the assignment with the largest total similarity among pairs
    of similarity at least ``thr`` (scipy's linear_sum_assignment on 1 - similarity)."""
    sim = np.asarray(similarity, dtype=np.float64)
    if not sim.size:
        return []
    from scipy.optimize import linear_sum_assignment

    ok = sim >= thr
    rows, cols = linear_sum_assignment(np.where(ok, 1.0 - sim, 1e6))
    return sorted((int(i), int(j)) for i, j in zip(rows, cols) if ok[i, j])


def _centers(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return (boxes[:, :2] + boxes[:, 2:]) / 2


@dataclass
class Track:
    id: int
    box: np.ndarray  # xyxy to find the person in next (from the last pose)
    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    score: float = 1.0  # the box score it started from, carried while tracked
    filter: OneEuroFilter | None = None
    missed: int = 0  # detector runs in a row that did not confirm this person
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # box centre, px per frame
    lost_frames: int = 0  # frames since the person was last seen (0: seen in the latest frame)
    confident: float = 0.0  # keypoints above the threshold when a detection last confirmed it

    def shift(self) -> np.ndarray:
        """Where the person has moved since last seen, at constant velocity (px)."""
        return self.velocity * (self.lost_frames + 1)

    def predicted_box(self) -> np.ndarray:
        return np.asarray(self.box, np.float64) + np.tile(self.shift(), 2)


@dataclass
class PoseTracks:
    """Track ids across frames. ``update`` takes this frame's people (keypoints, scores,
    the boxes xyxy they were found in, the boxes to follow them in next, box scores, and
    for people followed from a track, that track's id) and returns each one's track.

    A followed person keeps their track. The others (detections) are matched to the
    remaining tracks, active and lost, by Hungarian matching on :func:`pose_similarity`
    with each track moved on at its velocity: first the detections scored at least
    ``high_score``, then the lower ones to active tracks only. A detection matched to
    nothing starts a new track when its score is high and is dropped (None) otherwise.
    A track seen by no one is lost, kept ``max_lost`` frames so that a person who was
    hidden or missed gets their id back, then dropped. ``tracks`` holds the active
    tracks, ``lost`` the lost ones."""

    sigmas: np.ndarray
    kpt_thr: float = 0.3
    match_thr: float = 0.3
    high_score: float = HIGH_SCORE
    max_lost: int = MAX_LOST_FRAMES
    tracks: list[Track] = field(default_factory=list)
    lost: list[Track] = field(default_factory=list)
    next_id: int = 0

    def similarity(self, tracks: list[Track], keypoints, scores, boxes) -> np.ndarray:
        k = keypoints.shape[1]
        shifts = np.asarray([t.shift() for t in tracks]).reshape(-1, 1, 2)
        return pose_similarity(np.asarray([t.keypoints for t in tracks]).reshape(-1, k, 2) + shifts,
                               np.asarray([t.keypoint_scores for t in tracks]).reshape(-1, k),
                               np.asarray([t.predicted_box() for t in tracks]).reshape(-1, 4),
                               keypoints, scores, boxes, self.sigmas, self.kpt_thr)

    def _match(self, tracks: list[Track], people: list[int], keypoints, scores, boxes) -> list[tuple[Track, int]]:
        if not tracks or not people:
            return []
        sim = self.similarity(tracks, keypoints[people], scores[people], boxes[people])
        return [(tracks[i], people[j]) for i, j in hungarian_match(sim, self.match_thr)]

    def update(self, keypoints: np.ndarray, scores: np.ndarray, boxes: np.ndarray, next_boxes: np.ndarray,
               box_scores: np.ndarray, owners=None) -> list[Track | None]:
        n = len(keypoints)
        keypoints, scores = np.asarray(keypoints, np.float64), np.asarray(scores, np.float64)
        boxes = np.asarray(boxes, np.float64).reshape(n, 4)
        box_scores = np.asarray(box_scores, np.float64).reshape(n)
        owners = [None] * n if owners is None else list(owners)
        active = {t.id: t for t in self.tracks}
        found: dict[int, Track] = {}
        for j, owner in enumerate(owners):
            if owner is not None and owner in active and all(t.id != owner for t in found.values()):
                found[j] = active[owner]
        taken = {t.id for t in found.values()}
        rest = [j for j in range(n) if j not in found]
        high = [j for j in rest if box_scores[j] >= self.high_score]
        low = [j for j in rest if box_scores[j] < self.high_score]
        free = [t for t in self.tracks if t.id not in taken] + self.lost
        for track, j in self._match(free, high, keypoints, scores, boxes):
            found[j] = track
        taken = {t.id for t in found.values()}
        free = [t for t in self.tracks if t.id not in taken]
        for track, j in self._match(free, low, keypoints, scores, boxes):
            found[j] = track
        result: list[Track | None] = []
        for j in range(n):
            track = found.get(j)
            if track is None and box_scores[j] >= self.high_score:
                track = Track(self.next_id, next_boxes[j], keypoints[j], scores[j], lost_frames=-1)
                self.next_id += 1
            if track is not None:
                self._observe(track, keypoints[j], scores[j], next_boxes[j], float(box_scores[j]))
            result.append(track)
        seen = {t.id for t in result if t is not None}
        unseen = [t for t in self.tracks + self.lost if t.id not in seen]
        for track in unseen:
            track.lost_frames += 1
        self.tracks = [t for t in result if t is not None]
        self.lost = [t for t in unseen if t.lost_frames <= self.max_lost]
        return result

    def _observe(self, track: Track, keypoints, scores, next_box, box_score: float) -> None:
        if track.lost_frames >= 0:  # not a new track: update the velocity
            # from the joints confident before and now (the box of the confident joints
            # moves when some of them get hidden), else from the boxes
            both = (track.keypoint_scores > self.kpt_thr) & (scores > self.kpt_thr)
            moved = (np.median(keypoints[both] - track.keypoints[both], axis=0) if both.sum() >= 3
                     else (_centers(next_box) - _centers(track.box))[0])
            track.velocity = 0.5 * track.velocity + 0.5 * moved / (track.lost_frames + 1)
        track.box, track.keypoints, track.keypoint_scores = np.asarray(next_box, np.float64), keypoints, scores
        track.score, track.lost_frames = box_score, 0
        # the confident joints it has, decaying slowly: a sudden drop is a lost person
        track.confident = max(float((scores > self.kpt_thr).sum()), 0.9 * track.confident)

    def reset(self) -> None:
        self.tracks, self.lost, self.next_id = [], [], 0
