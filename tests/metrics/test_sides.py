"""metrics.sides: limbs of a layout, and which people's limb labels look mirrored."""

from __future__ import annotations

import numpy as np

from slimpose.keypoints import LSP14, get_layout, layout_from_names
from slimpose.metrics.pck import torso_sizes
from slimpose.metrics.sides import ALL_PAIRS, limb_groups, mirrored_limbs


def test_limbs_are_the_paired_chains_that_hang_off_the_torso():
    names = lambda layout, joints: sorted(layout.names[j] for j in joints)  # noqa: E731
    for name in ("lsp", "coco", "mpii"):
        layout = get_layout(name)
        limbs = limb_groups(layout)
        assert list(limbs) == sorted(limbs, key=lambda n: min(limbs[n])), name
        assert set(limbs) == {"hip-knee-ankle", "shoulder-elbow-wrist"}, name
        assert names(layout, limbs["hip-knee-ankle"]) == sorted(
            f"{s}_{j}" for s in ("left", "right") for j in ("hip", "knee", "ankle")), name
        assert names(layout, limbs["shoulder-elbow-wrist"]) == sorted(
            f"{s}_{j}" for s in ("left", "right") for j in ("shoulder", "elbow", "wrist")), name


def test_a_layout_whose_pairs_form_no_chain_is_one_group_of_all_its_pairs():
    layout = layout_from_names("paws", ["nose", "left_paw", "right_paw", "left_ear", "right_ear"])
    assert layout.flip_pairs and not layout.skeleton
    assert limb_groups(layout) == {ALL_PAIRS: (1, 2, 3, 4)}
    assert limb_groups(layout_from_names("dots", ["a", "b"])) == {}


def _people(n: int = 3) -> np.ndarray:
    """(n, 14, 2) joints spread 60 px apart; torso (left shoulder to right hip) 300 px."""
    xy = np.stack([np.arange(14) * 60.0 + 10.0, np.full(14, 50.0)], axis=1)
    xy[9] = [130.0, 350.0]
    return np.tile(xy, (n, 1, 1))


def test_a_person_whose_leg_labels_are_mirrored_is_flagged_with_its_hits():
    gt = _people()
    labelled = np.ones((3, 14), bool)
    flip = LSP14.flip_index
    legs = list(limb_groups(LSP14)["hip-knee-ankle"])
    pred = gt.copy()
    # persons 0 and 2 have mirrored leg labels: the model finds each leg joint at its partner's label
    for i in (0, 2):
        pred[i, legs] = gt[i, [flip[j] for j in legs]]
    labelled[2, 2] = False  # person 2 has no torso normaliser: not checked
    limbs = mirrored_limbs(pred, gt, labelled, LSP14, torso_sizes(gt, labelled, LSP14.torso))
    flagged, own, mirrored = limbs["hip-knee-ankle"]
    assert flagged.tolist() == [True, False, False]
    assert own.tolist() == [0, 6, 0] and mirrored.tolist() == [6, 0, 0]
    assert not limbs["shoulder-elbow-wrist"][0].any()


def test_a_limb_needs_a_clear_margin_and_enough_hits():
    gt = _people(1)
    labelled = np.ones((1, 14), bool)
    norm = torso_sizes(gt, labelled, LSP14.torso)
    pred = gt.copy()
    pred[0, [0, 5]] = gt[0, [5, 0]]  # only the ankles look mirrored: 2 hits against 4
    assert not mirrored_limbs(pred, gt, labelled, LSP14, norm)["hip-knee-ankle"][0].any()
    pred[0, [1, 4]] = gt[0, [4, 1]]  # knees too: 4 against 2
    assert mirrored_limbs(pred, gt, labelled, LSP14, norm)["hip-knee-ankle"][0].all()
    assert not mirrored_limbs(pred, gt, labelled, LSP14, norm, margin=3)["hip-knee-ankle"][0].any()
    assert not mirrored_limbs(pred, gt, labelled, LSP14, norm, min_hits=5)["hip-knee-ankle"][0].any()
