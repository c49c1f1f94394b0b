"""slimpose.inference.pipeline: people ranked as the COCO evaluation ranks them."""

from __future__ import annotations

import numpy as np

from slimpose.inference.pipeline import PoseTracker
from slimpose.keypoints import get_layout
from slimpose.metrics.coco import coco_topdown_results, person_scores


class FixedPoses:
    """A pose model that answers each box with the pose it was given for it."""

    def __init__(self, layout, keypoints, scores):
        self.layout, self.keypoints, self.scores = layout, keypoints, scores

    def __call__(self, image, boxes_xywh, flip=False):
        assert len(boxes_xywh) == len(self.keypoints)
        return self.keypoints.astype(np.float32), self.scores.astype(np.float32)


def test_people_are_scored_with_the_evaluations_rescoring():
    layout = get_layout("coco")
    rng = np.random.default_rng(3)
    offsets = np.array([[20, 20], [220, 30], [40, 260]], np.float64)
    kpts = rng.uniform(0, 120, (1, 17, 2)) + offsets[:, None]  # three people far apart: NMS keeps all
    scores = rng.uniform(0.0, 0.6, (3, 17))
    scores[0, :3] = 0.95
    scores[2] = 0.15  # no joint above the threshold: score 0
    boxes = np.concatenate([kpts.min(axis=1), kpts.max(axis=1)], axis=1).astype(np.float32)
    box_scores = np.array([0.6, 0.9, 0.8], np.float32)

    def detector(image, image_id=None):
        return boxes, box_scores

    tracker = PoseTracker(FixedPoses(layout, kpts, scores), detector, refine=False)
    people = tracker.estimate(np.zeros((400, 400, 3), np.uint8))
    want = person_scores(box_scores, scores.astype(np.float32))
    assert want[2] == 0 and len(set(want.round(6))) == 3
    got = {int(np.argmin(np.abs(p.box - boxes).sum(axis=1))): p.score for p in people}
    assert sorted(got) == [0, 1, 2]
    np.testing.assert_allclose([got[i] for i in range(3)], want, rtol=1e-6)
    assert [p.score for p in people] == sorted((p.score for p in people), reverse=True)
    # the COCO evaluation gives each person the same score
    results = coco_topdown_results([0, 1, 2], kpts, scores.astype(np.float32), box_scores, np.ones(3),
                                   layout.sigmas_array(), nms=False)
    np.testing.assert_allclose([r["score"] for r in results], [got[i] for i in range(3)], rtol=1e-6)
