"""projects/lspet_sides: finding and turning back left/right-mirrored limb labels."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from slimpose.keypoints import LSP14
from slimpose.metrics.sides import limb_groups

SCRIPT = Path(__file__).resolve().parents[2] / "projects" / "lspet_sides" / "fix_sides.py"
spec = importlib.util.spec_from_file_location("fix_sides", SCRIPT)
fix_sides = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fix_sides)


def _people(n: int = 3) -> np.ndarray:
    """(n, 14, 3) labelled joints spread 60 px apart; torso (left shoulder to right hip) 300 px."""
    xy = np.stack([np.arange(14) * 60.0 + 10.0, np.full(14, 50.0)], axis=1)
    xy[9] = [130.0, 350.0]
    return np.concatenate([np.tile(xy, (n, 1, 1)), np.ones((n, 14, 1))], axis=2)


def test_flagged_limbs_get_their_left_and_right_labels_exchanged():
    joints = _people()
    flip = LSP14.flip_index
    legs = list(limb_groups(LSP14)["hip-knee-ankle"])
    flagged = {"hip-knee-ankle": np.array([True, False, False]), "shoulder-elbow-wrist": np.zeros(3, bool)}
    fixed = fix_sides.unmirror(joints, flagged)
    np.testing.assert_array_equal(fixed[0, legs], joints[0, [flip[j] for j in legs]])
    np.testing.assert_array_equal(fixed[1:], joints[1:])
    np.testing.assert_array_equal(fixed[0, 6:], joints[0, 6:])  # arms, neck and head untouched


def test_people_are_predicted_in_the_boxes_the_lsp_data_source_reads(tmp_path):
    """Each person is predicted in the extent of its labelled joints, into the row of its
    image; a person the data source skips (one labelled joint) stays NaN and unlabelled."""
    import cv2
    import scipy.io as sio

    from slimpose.data.lsp import LspSource

    joints = _people(3)
    joints[2, 1:, 2] = 0.0  # image 3: one labelled joint, too few for a box
    sio.savemat(tmp_path / "joints.mat", {"joints": joints.transpose(1, 2, 0)})
    (tmp_path / "images").mkdir()
    for k in (1, 2, 3):
        cv2.imwrite(str(tmp_path / "images" / f"im{k:05d}.jpg"), np.zeros((400, 900, 3), np.uint8))
    boxes = []

    def estimator(image, box, flip):
        boxes.append(box[0].copy())
        return joints[:1, :, :2] + 1.0, np.ones((1, 14))

    source = LspSource(tmp_path / "joints.mat", tmp_path / "images", LSP14, 0.75)
    pred, labelled = fix_sides.predict(estimator, source, 1, 3)
    np.testing.assert_allclose(boxes, [[10.0, 50.0, 780.0, 300.0]] * 2)
    np.testing.assert_array_equal(pred[:2], np.tile(joints[:1, :, :2] + 1.0, (2, 1, 1)))
    assert np.isnan(pred[2]).all() and labelled[:2].all() and not labelled[2].any()
