"""slimpose.deploy.runtime.OnnxPoseEstimator: shipped names and the two box conventions
(and PoseTracker, which loads its pose model through it)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from slimpose.deploy.runtime import OnnxPoseEstimator, RuntimeModelError
from slimpose.weights import WeightsError, get_weight, list_weights

NAME = min((w for w in list_weights()), key=lambda w: w.path.stat().st_size).name  # the smallest shipped weight


@pytest.fixture(scope="module")
def estimator():
    return OnnxPoseEstimator(NAME, threads=1)


def _image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return cv2.GaussianBlur(rng.integers(0, 255, (160, 200, 3), dtype=np.uint8), (7, 7), 0)


def test_a_shipped_weight_name_is_taken_where_an_onnx_path_is(estimator, tmp_path):
    assert estimator.path == get_weight(NAME).path
    with pytest.raises(WeightsError, match="no shipped weight named 'no_such_weight'"):
        OnnxPoseEstimator("no_such_weight")
    with pytest.raises(RuntimeModelError, match="ONNX model not found"):
        OnnxPoseEstimator(tmp_path / "gone.onnx")


def test_xyxy_and_xywh_boxes_give_the_same_poses(estimator):
    image = _image()
    xyxy = np.array([[10.0, 20.0, 110.0, 150.0], [50.0, 5.0, 190.0, 100.0]])
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    k1, s1 = estimator(image, boxes_xyxy=xyxy)
    k2, s2 = estimator(image, boxes_xywh=xywh)
    k3, s3 = estimator(image, xywh)  # positional: xywh, as before boxes_xyxy existed
    assert k1.shape == (2, estimator.layout.num_keypoints, 2)
    np.testing.assert_allclose(k1, k2, atol=1e-4)
    np.testing.assert_allclose(s1, s2, atol=1e-6)
    np.testing.assert_array_equal(k2, k3)
    np.testing.assert_array_equal(s2, s3)
    k4, _ = estimator(image, boxes_xyxy=xyxy[:0])
    assert k4.shape == (0, estimator.layout.num_keypoints, 2)
    with pytest.raises(ValueError, match="not both"):
        estimator(image, boxes_xywh=xywh, boxes_xyxy=xyxy)


def test_pose_tracker_takes_a_shipped_weight_name():
    from slimpose.inference.pipeline import PoseTracker

    tracker = PoseTracker(NAME, None, threads=1)
    assert tracker.pose.path == get_weight(NAME).path
    people = tracker.estimate(_image())
    assert len(people) <= 1 and all(p.keypoints.shape == (tracker.pose.layout.num_keypoints, 2) for p in people)
