"""From a photo or a video frame to people: detector → pose model → (tracking, smoothing).

numpy + OpenCV + onnxruntime only::

    from slimpose.inference.pipeline import PoseTracker
    from slimpose.inference.detectors import OnnxDetector

    tracker = PoseTracker("tinypose.onnx", OnnxDetector("yolox_nano_416x416.onnx"))
    people = tracker.estimate(cv2.imread("photo.jpg"))   # one photo, no tracking state
    for frame in frames:                                  # a video: ids, smoothing
        for person in tracker(frame):
            person.track_id, person.box, person.keypoints, person.keypoint_scores
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from slimpose.errors import SlimposeError
from slimpose.inference.detectors import WholeImageDetector, clip_boxes
from slimpose.inference.tracking import OneEuroFilter, PoseTracks, box_inside, keypoint_box
from slimpose.metrics.coco import oks_nms, person_scores


# A followed person is lost when their pose keeps fewer than this fraction of the
# confident joints it had, or their box keeps less than this much inside the frame.
LOST_FRACTION = 0.5
MIN_IN_FRAME = 0.25


@dataclass
class Person:
    box: np.ndarray  # (4,) xyxy image pixels: the box the pose was estimated in
    score: float  # box score x mean of the keypoint scores above 0.2 (metrics.coco.person_scores)
    keypoints: np.ndarray  # (K, 2) image pixels
    keypoint_scores: np.ndarray  # (K,)
    box_score: float = 1.0  # the detector's score for the box (carried along a track)
    track_id: int | None = None

    @property
    def box_xywh(self) -> list[float]:
        x1, y1, x2, y2 = (float(v) for v in self.box)
        return [x1, y1, x2 - x1, y2 - y1]


def covered(boxes: np.ndarray, by: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    """Which ``boxes`` lie at least ``fraction`` inside one of ``by``. Not IoU: a track
    box from keypoints can be much smaller than the person's detection box."""
    if not len(by):
        return np.zeros(len(boxes), bool)
    return box_inside(boxes, by).max(axis=1) >= fraction


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


class PoseTracker:
    """People in photos and video frames from a pose model and a person detector.

    ``pose_model``: an :class:`~slimpose.deploy.runtime.OnnxPoseEstimator`, the path of
    an exported ONNX file, or a shipped weight's name (``"lpn_50_lsp_192x144"``).
    ``detector``: any ``(image, image_id) -> (boxes xyxy, scores)``
    (see :mod:`slimpose.inference.detectors`); None = the whole image.

    ``estimate(image)`` handles one photo and keeps no state. Calling the tracker on
    consecutive frames tracks people: each person's next box comes from their keypoints,
    the detector runs every ``det_every`` frames, and in between only when a tracked
    person is really lost (their pose lost most of its confident joints, their box left
    the frame, or another person took it over). Ids are kept by Hungarian matching on box
    IoU and keypoint OKS (:class:`~slimpose.inference.tracking.PoseTracks`); a lost track
    is remembered ``MAX_LOST_FRAMES`` frames, so a person found again after an occlusion
    gets their id back. With ``smooth`` the keypoints go through a One-Euro filter
    (``min_cutoff`` Hz, ``beta`` per person height per second). A tracked person that
    ``max_missed`` detector runs in a row do not confirm becomes lost: a track that
    drifted onto the background ends, a real person is found again by the detector.
    ``refine`` (default: on with the whole-image detector) re-runs the pose on the box of
    its own confident keypoints, so a person who does not fill the frame is cropped right.
    """

    def __init__(self, pose_model, detector=None, *, flip: bool = False, det_every: int = 1,
                 refine: bool | None = None, smooth: bool = False, min_cutoff: float = 1.0, beta: float = 5.0,
                 kpt_thr: float = 0.3, oks_nms_thr: float = 0.9, max_missed: int = 1,
                 threads: int | None = None):
        if isinstance(pose_model, (str, Path)):
            from slimpose.deploy.runtime import OnnxPoseEstimator

            pose_model = OnnxPoseEstimator(pose_model, threads=threads)
        if det_every < 1:
            raise SlimposeError(f"det_every must be >= 1, got {det_every}")
        self.pose = pose_model
        self.detector = detector if detector is not None else WholeImageDetector()
        self.refine = isinstance(self.detector, WholeImageDetector) if refine is None else bool(refine)
        self.flip, self.det_every, self.smooth = flip, int(det_every), smooth
        self.new_filter = partial(OneEuroFilter, min_cutoff, beta)
        self.new_filter()  # bad parameters fail here, not at the first tracked frame
        self.kpt_thr, self.oks_nms_thr, self.max_missed = kpt_thr, oks_nms_thr, int(max_missed)
        self.sigmas = self.pose.layout.sigmas_array()
        self.tracks = PoseTracks(self.sigmas, kpt_thr=kpt_thr)
        self.frame_index = 0
        self.timings = {"detector": 0.0, "pose": 0.0}
        self.detector_calls = 0
        self.redetections = 0  # detector runs between scheduled ones, called by a lost track

    # ------------------------------------------------------------------ steps
    def detect(self, image: np.ndarray, image_id=None) -> tuple[np.ndarray, np.ndarray]:
        t = time.perf_counter()
        boxes, scores = self.detector(image, image_id)
        self.timings["detector"] += time.perf_counter() - t
        self.detector_calls += 1
        return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32).reshape(-1)

    def run_pose(self, image: np.ndarray, boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = time.perf_counter()
        # By keyword, in the form every pose model takes (a custom one written for the
        # (image, boxes_xywh, flip) call too).
        kpts, scores = self.pose(image, boxes_xywh=xyxy_to_xywh(boxes_xyxy), flip=self.flip)
        self.timings["pose"] += time.perf_counter() - t
        return kpts, scores

    def refined(self, image, boxes, kpts, scores):
        """Boxes of the confident keypoints (where there are enough) and the poses in them."""
        better = [keypoint_box(k, s, self.kpt_thr) for k, s in zip(kpts, scores)]
        idx = [i for i, b in enumerate(better) if b is not None]
        if not idx:
            return boxes, kpts, scores
        new_boxes = boxes.copy()
        new_boxes[idx] = np.asarray([better[i] for i in idx], np.float32)
        new_boxes[idx] = clip_boxes(new_boxes[idx], image.shape)
        k2, s2 = self.run_pose(image, new_boxes[idx])
        kpts, scores = kpts.copy(), scores.copy()
        kpts[idx], scores[idx] = k2, s2
        return new_boxes, kpts, scores

    def people_in(self, image, boxes, box_scores, refine: bool) -> list[Person]:
        """Poses in the given boxes, rescored, duplicates removed by OKS-NMS, best first."""
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, box_scores = boxes[valid], box_scores[valid]
        if not len(boxes):
            return []
        kpts, scores = self.run_pose(image, boxes)
        if refine:
            boxes, kpts, scores = self.refined(image, boxes, kpts, scores)
        rescored = person_scores(box_scores, scores)
        areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
        keep = oks_nms(np.concatenate([kpts, scores[..., None]], axis=2), rescored, areas, self.sigmas,
                       thr=self.oks_nms_thr)
        return [Person(boxes[i], float(rescored[i]), kpts[i], scores[i], float(box_scores[i])) for i in keep]

    # ------------------------------------------------------------------ photos
    def estimate(self, image: np.ndarray, image_id=None) -> list[Person]:
        """People in one photo (no tracking state is read or changed)."""
        boxes, box_scores = self.detect(image, image_id)
        return self.people_in(image, boxes, box_scores, self.refine)

    # ------------------------------------------------------------------ video
    def reset(self) -> None:
        """Forget the tracks (a new video)."""
        self.tracks.reset()
        self.frame_index = 0

    def __call__(self, frame: np.ndarray, timestamp: float | None = None, image_id=None) -> list[Person]:
        """People in the next video frame, with track ids. ``timestamp`` in seconds
        (default: the frame number at 30 fps) paces the smoothing."""
        t = self.frame_index / 30.0 if timestamp is None else float(timestamp)
        active = self.tracks.tracks
        due = self.frame_index % self.det_every == 0
        followed: dict[int, Person] = {}
        if not due and active:
            followed = self.follow(frame, active)
            # Someone was really lost (their pose lost most of its confident joints, they
            # left the frame or another person took their box over): look for them in
            # this frame rather than at the next scheduled detector run. A weak joint, or
            # a pose that was never confident, is no reason to run the detector.
            due = len(followed) < len(active)
            self.redetections += int(due)
        detected: list[Person] = []
        if due:
            boxes, box_scores = self.detect(frame, image_id)
            detected = self.people_in(frame, boxes, box_scores, self.refine)
            # People the detector missed this time stay followed through their own boxes,
            # unless it has missed them before, their box lies in someone's detection box
            # (the detection is theirs, or they are hidden behind that person), or their
            # pose is unsure: these are matched to detections or kept as lost tracks.
            track_boxes = np.asarray([tr.predicted_box() for tr in active], np.float32).reshape(-1, 4)
            uncovered = ~covered(track_boxes, boxes)
            keep = [tr for tr, m in zip(active, uncovered) if m and tr.missed < self.max_missed]
            if followed:  # already followed this frame (a lost track called the detector)
                followed = {tr.id: followed[tr.id] for tr in keep if tr.id in followed}
            else:
                followed = self.follow(frame, keep)
            followed = {i: p for i, p in followed.items() if self._next_box(p) is not None}
        people = self._deduplicate(detected + list(followed.values()))
        owners = [next((i for i, q in followed.items() if q is p), None) for p in people]
        k = self.pose.layout.num_keypoints
        # A detected person is kept even with an unsure pose (the detector vouches for
        # them) and followed in their detection box.
        next_boxes = [self._next_box(p) for p in people]
        next_boxes = [p.box if b is None else b for p, b in zip(people, next_boxes)]
        tracks = self.tracks.update(np.asarray([p.keypoints for p in people]).reshape(-1, k, 2),
                                    np.asarray([p.keypoint_scores for p in people]).reshape(-1, k),
                                    np.asarray([p.box for p in people], np.float32).reshape(-1, 4),
                                    clip_boxes(np.asarray(next_boxes, np.float32).reshape(-1, 4), frame.shape),
                                    np.asarray([p.box_score for p in people], np.float32), owners)
        kept = []
        for person, track in zip(people, tracks):
            if track is None:  # a low-score detection that continues no track
                continue
            if due:
                track.missed = 0 if any(person is d for d in detected) else track.missed + 1
            person.track_id = track.id
            if self.smooth:
                if track.filter is None:
                    track.filter = self.new_filter()
                height = float(person.box[3] - person.box[1])
                person.keypoints = track.filter(person.keypoints, t, scale=height).astype(np.float32)
            kept.append(person)
        self.frame_index += 1
        return sorted(kept, key=lambda p: p.track_id)

    def follow(self, frame: np.ndarray, tracks) -> dict[int, Person]:
        """Poses in the tracks' own boxes (from their last keypoints, moved on at their
        velocity), by track id. Left out, as lost: a track whose box has left the frame,
        whose pose has lost most of the confident joints it had, or whose pose is another
        track's person (two tracks on one person: the one whose pose it continues keeps it)."""
        if not tracks:
            return {}
        raw = np.asarray([tr.predicted_box() for tr in tracks], np.float32).reshape(-1, 4)
        boxes = clip_boxes(raw, frame.shape)
        in_frame = box_inside(raw, boxes).diagonal()
        idx = [i for i, b in enumerate(boxes) if b[2] > b[0] and b[3] > b[1] and in_frame[i] >= MIN_IN_FRAME]
        if not idx:
            return {}
        kpts, scores = self.run_pose(frame, boxes[idx])
        rescored = person_scores(np.asarray([tracks[i].score for i in idx], np.float32), scores)
        people: dict[int, Person] = {}
        for n, i in enumerate(idx):
            confident = int((scores[n] > self.kpt_thr).sum())
            had = tracks[i].confident
            if confident < LOST_FRACTION * had or (confident < 3 <= had):
                continue
            people[i] = Person(boxes[i], float(rescored[n]), kpts[n], scores[n], tracks[i].score)
        if len(people) > 1:
            order = list(people)
            continuity = self.tracks.similarity([tracks[i] for i in order],
                                                np.asarray([people[i].keypoints for i in order], np.float64),
                                                np.asarray([people[i].keypoint_scores for i in order], np.float64),
                                                np.asarray([people[i].box for i in order], np.float64)).diagonal()
            full = np.asarray([np.concatenate([people[i].keypoints, people[i].keypoint_scores[:, None]], axis=1)
                               for i in order])
            areas = np.asarray([np.prod(people[i].box[2:] - people[i].box[:2]) for i in order])
            keep = oks_nms(full, continuity, areas, self.sigmas, thr=self.oks_nms_thr)
            people = {order[j]: people[order[j]] for j in sorted(keep)}
        return {tracks[i].id: p for i, p in people.items()}

    def _deduplicate(self, people: list[Person]) -> list[Person]:
        if len(people) < 2:
            return people
        kpts = np.asarray([np.concatenate([p.keypoints, p.keypoint_scores[:, None]], axis=1) for p in people])
        areas = np.asarray([np.prod(p.box[2:] - p.box[:2]) for p in people])
        keep = oks_nms(kpts, np.asarray([p.score for p in people]), areas, self.sigmas, thr=self.oks_nms_thr)
        return [people[i] for i in keep]

    def _next_box(self, person: Person) -> np.ndarray | None:
        return keypoint_box(person.keypoints, person.keypoint_scores, self.kpt_thr)
