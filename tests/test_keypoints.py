"""Layouts from joint names: flip pairs read off left/right names in every spelling,
default OKS sigmas, a PCK torso by name, and the mistakes refused with their names."""

import numpy as np
import pytest

from slimpose.keypoints import (
    COCO17,
    DEFAULT_OKS_SIGMA,
    LSP14,
    MPII16,
    flip_pairs_from_names,
    get_layout,
    layout_from_names,
    registered_layout,
)


def test_the_default_sigma_is_the_mean_of_cocos():
    assert DEFAULT_OKS_SIGMA == pytest.approx(np.mean(COCO17.sigmas), abs=5e-4) and DEFAULT_OKS_SIGMA == 0.067


@pytest.mark.parametrize("layout", [COCO17, MPII16, LSP14])
def test_the_built_in_layouts_pairs_follow_from_their_names(layout):
    assert {frozenset(p) for p in flip_pairs_from_names(layout.names)} == {frozenset(p) for p in layout.flip_pairs}


@pytest.mark.parametrize("left, right", [
    ("left_hand", "right_hand"), ("Left-Hand", "RIGHT hand"), ("l_hand", "r_hand"), ("L-hand", "R hand"),
    ("hand_left", "hand_right"), ("hand-Left", "Hand Right"), ("leftHand", "rightHand"), ("LeftHand", "right_hand"),
    ("hand_l", "hand_r"), ("front paw left", "front_paw_right"),
])
def test_flip_pairs_are_read_off_the_names_in_every_spelling(left, right):
    assert flip_pairs_from_names(["nose", right, "tail", left]) == ((3, 1),)


def test_names_without_a_side_or_a_partner_mirror_onto_themselves():
    # "left"/"right" alone, a one-letter side without a separator, a side with no partner
    names = ["left", "right", "lhand", "rhand", "left_eye", "ring", "rear_leg", "lumbar_x"]
    assert flip_pairs_from_names(names) == ()
    layout = layout_from_names("x", names)
    assert layout.flip_pairs == () and layout.flip_index == list(range(len(names)))


def test_two_joints_of_one_side_of_a_name_are_refused():
    with pytest.raises(ValueError, match="'left_hand', 'l_hand' are the same side of 'hand'"):
        flip_pairs_from_names(["left_hand", "l_hand", "right_hand"])


def test_a_layout_from_names_has_default_sigmas_pairs_by_name_and_a_torso():
    names = ["head", "l_hand", "r_hand", "pelvis"]
    layout = layout_from_names("critter", names, [(0, 3)])
    assert layout.flip_pairs == ((1, 2),) and layout.skeleton == ((0, 3),) and layout.torso is None
    assert layout.sigmas == (DEFAULT_OKS_SIGMA,) * 4 and layout.weights_array().tolist() == [1.0] * 4
    assert layout_from_names("c", names, sigmas=[0.05]).sigmas == (0.05,) * 4
    assert layout_from_names("c", names, sigmas=[0.1, 0.2, 0.2, 0.3]).sigmas == (0.1, 0.2, 0.2, 0.3)
    assert layout_from_names("c", names, flip_pairs=[("head", "pelvis")]).flip_index == [3, 1, 2, 0]
    assert layout_from_names("c", names, flip_pairs=[]).flip_pairs == ()
    assert layout_from_names("c", names, torso=["head", "pelvis"]).torso == (0, 3)
    # and it travels as the built-in ones do
    from slimpose.keypoints import KeypointLayout

    assert KeypointLayout.from_dict(layout.to_dict()) == layout


@pytest.mark.parametrize("kwargs, message", [
    ({"flip_pairs": [("head", "tail")]}, "flip pair: 'tail' is not a joint name"),
    ({"flip_pairs": [("l_hand", "r_hand"), ("r_hand", "head")]}, "flip pairs: each joint may appear in one pair"),
    ({"flip_pairs": [("head", "head")]}, "flip pairs: each joint may appear in one pair"),
    ({"sigmas": [0.1, 0.2]}, "2 OKS sigmas for 4 joints"),
    ({"sigmas": [0.0]}, "OKS sigmas must be positive"),
    ({"torso": ["head"]}, "PCK torso: expected two different joint names"),
    ({"torso": ["head", "neck"]}, "PCK torso: 'neck' is not a joint name"),
])
def test_mistakes_in_the_options_name_themselves(kwargs, message):
    with pytest.raises(ValueError, match=message):
        layout_from_names("c", ["head", "l_hand", "r_hand", "pelvis"], **kwargs)


def test_repeated_or_missing_names_are_refused():
    with pytest.raises(ValueError, match="'a' appear more than once"):
        layout_from_names("c", ["a", "b", "a"])
    with pytest.raises(ValueError, match="no joint names"):
        layout_from_names("c", [])


def test_registered_layouts_are_told_from_custom_ones():
    assert registered_layout(get_layout("coco")) and registered_layout(LSP14)
    assert not registered_layout(layout_from_names("coco", COCO17.names))  # same name, other sigmas
    assert not registered_layout(layout_from_names("critter", ["a", "b"]))
