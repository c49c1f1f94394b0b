"""projects/lspet_sides: finding and turning back left/right-mirrored limb labels."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from slimpose.keypoints import LSP14

SCRIPT = Path(__file__).resolve().parents[2] / "projects" / "lspet_sides" / "fix_sides.py"
spec = importlib.util.spec_from_file_location("fix_sides", SCRIPT)
fix_sides = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fix_sides)


def _people(n: int = 3) -> np.ndarray:
    """(n, 14, 3) labelled joints spread 60 px apart; torso (left shoulder to right hip) 300 px."""
    xy = np.stack([np.arange(14) * 60.0 + 10.0, np.full(14, 50.0)], axis=1)
    xy[9] = [130.0, 350.0]
    return np.concatenate([np.tile(xy, (n, 1, 1)), np.ones((n, 14, 1))], axis=2)


def test_a_person_whose_leg_labels_are_mirrored_gets_them_turned_back():
    joints = _people()
    labelled = np.ones((3, 14), bool)
    flip = LSP14.flip_index
    legs = list(fix_sides.GROUPS["legs"])
    pred = joints[..., :2].copy()
    # person 0's and person 2's leg labels are mirrored: the model finds each leg joint at its partner's label
    for i in (0, 2):
        pred[i, legs] = joints[i, [flip[j] for j in legs], :2]
    labelled[2, 2] = False  # person 2 has no torso normaliser: left as labelled
    flagged = fix_sides.mirrored_groups(pred, joints[..., :2], labelled)
    assert flagged["legs"].tolist() == [True, False, False]
    assert not flagged["arms"].any()
    fixed = fix_sides.unmirror(joints, flagged)
    np.testing.assert_array_equal(fixed[0, :, :2], pred[0])  # the labels now match the model
    np.testing.assert_array_equal(fixed[1:], joints[1:])
    np.testing.assert_array_equal(fixed[0, 6:], joints[0, 6:])  # arms, neck and head untouched


def test_a_group_needs_a_clear_margin_to_be_turned():
    joints = _people(1)
    labelled = np.ones((1, 14), bool)
    pred = joints[..., :2].copy()
    pred[0, [0, 5]] = joints[0, [5, 0], :2]  # only the ankles look mirrored: 2 against 4
    assert not fix_sides.mirrored_groups(pred, joints[..., :2], labelled)["legs"].any()


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
