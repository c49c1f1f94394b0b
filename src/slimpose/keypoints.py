"""Keypoint layouts: joint names, flip pairs, skeleton, OKS sigmas and loss weights.

A layout is everything the data pipeline, the codecs, the metrics and the drawing code
need to know about a keypoint set. The built-in ones are COCO-17, MPII-16 and LSP-14;
``register_layout`` adds a custom one; :func:`layout_from_names` builds one from joint
names alone (a data file's keypoint category), its flip pairs read off the names by
:func:`flip_pairs_from_names`. :func:`non_finite_joints` finds labelled joints
holding NaN or infinity (the data readers and the COCO metric refuse them). This module is
torch-free (the deploy runtime uses it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import re

import numpy as np


@dataclass(frozen=True)
class KeypointLayout:
    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    joint_weights: tuple[float, ...] = ()
    upper_body: tuple[int, ...] = ()
    # Pairs of joints whose distance normalises PCK (LSP's torso); empty where unused.
    torso: tuple[int, int] | None = None
    groups: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Names are read as text (drawing picks a joint's colour from its name's prefix);
        # a layout from a file's metadata may hold anything.
        if not isinstance(self.name, str):
            raise TypeError(f"layout name must be a string, got {self.name!r}")
        wrong = [(i, n) for i, n in enumerate(self.names) if not isinstance(n, str)]
        if wrong:
            i, n = wrong[0]
            raise TypeError(f"layout {self.name!r}: joint names must be strings, got {n!r} at index {i}")
        k = len(self.names)
        if len(self.sigmas) != k:
            raise ValueError(f"layout {self.name!r}: {len(self.sigmas)} sigmas for {k} keypoints")
        if self.joint_weights and len(self.joint_weights) != k:
            raise ValueError(f"layout {self.name!r}: {len(self.joint_weights)} joint weights for {k} keypoints")
        for a, b in (*self.flip_pairs, *self.skeleton):
            if not (0 <= a < k and 0 <= b < k):
                raise ValueError(f"layout {self.name!r}: joint pair ({a}, {b}) outside 0..{k - 1}")

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    @property
    def flip_index(self) -> list[int]:
        """Permutation that maps each joint to its mirror partner (itself if unpaired)."""
        index = list(range(self.num_keypoints))
        for a, b in self.flip_pairs:
            index[a], index[b] = b, a
        return index

    @property
    def lower_body(self) -> tuple[int, ...]:
        return tuple(i for i in range(self.num_keypoints) if i not in self.upper_body)

    def weights_array(self) -> np.ndarray:
        if not self.joint_weights:
            return np.ones(self.num_keypoints, dtype=np.float32)
        return np.asarray(self.joint_weights, dtype=np.float32)

    def sigmas_array(self) -> np.ndarray:
        return np.asarray(self.sigmas, dtype=np.float64)

    def to_dict(self) -> dict:
        """Plain-data form, stored in checkpoints and ONNX metadata."""
        return {
            "name": self.name,
            "names": list(self.names),
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "skeleton": [list(p) for p in self.skeleton],
            "sigmas": list(self.sigmas),
            "joint_weights": list(self.joint_weights),
            "upper_body": list(self.upper_body),
            "torso": list(self.torso) if self.torso else None,
            "groups": {k: list(v) for k, v in self.groups.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> "KeypointLayout":
        return cls(
            name=d["name"],
            names=tuple(d["names"]),
            flip_pairs=tuple(tuple(p) for p in d["flip_pairs"]),
            skeleton=tuple(tuple(p) for p in d["skeleton"]),
            sigmas=tuple(d["sigmas"]),
            joint_weights=tuple(d.get("joint_weights") or ()),
            upper_body=tuple(d.get("upper_body") or ()),
            torso=tuple(d["torso"]) if d.get("torso") else None,
            groups={k: tuple(v) for k, v in (d.get("groups") or {}).items()},
        )


COCO17 = KeypointLayout(
    name="coco",
    names=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    skeleton=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
        (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ),
    # The official COCO OKS constants (pycocotools' COCOeval.kpt_oks_sigmas).
    sigmas=(0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
            0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089),
    joint_weights=(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5),
    upper_body=tuple(range(11)),
    groups={
        "head": (0, 1, 2, 3, 4), "shoulder": (5, 6), "elbow": (7, 8), "wrist": (9, 10),
        "hip": (11, 12), "knee": (13, 14), "ankle": (15, 16),
    },
)

MPII16 = KeypointLayout(
    name="mpii",
    names=(
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
        "pelvis", "thorax", "upper_neck", "head_top",
        "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    skeleton=(
        (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
        (7, 12), (12, 11), (11, 10), (7, 13), (13, 14), (14, 15),
    ),
    # MMPose's MPII sigmas (used only for OKS-NMS; PCKh is the metric).
    sigmas=(0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026, 0.026, 0.026,
            0.062, 0.072, 0.179, 0.179, 0.072, 0.062),
    joint_weights=(1.5, 1.2, 1.0, 1.0, 1.2, 1.5, 1.0, 1.0, 1.0, 1.0, 1.5, 1.2, 1.0, 1.0, 1.2, 1.5),
    upper_body=(7, 8, 9, 10, 11, 12, 13, 14, 15),
    groups={
        "head": (8, 9), "shoulder": (12, 13), "elbow": (11, 14), "wrist": (10, 15),
        "hip": (2, 3), "knee": (1, 4), "ankle": (0, 5),
    },
)

LSP14 = KeypointLayout(
    name="lsp",
    names=(
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
        "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
        "neck", "head_top",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9)),
    skeleton=(
        (0, 1), (1, 2), (3, 4), (4, 5), (2, 3), (8, 2), (9, 3), (8, 9),
        (6, 7), (7, 8), (9, 10), (10, 11), (12, 13), (8, 12), (9, 12),
    ),
    # No official LSP sigmas exist: these are COCO's for the same body parts
    # (neck as shoulder, head top as hip-sized), used only for OKS-NMS.
    sigmas=(0.089, 0.087, 0.107, 0.107, 0.087, 0.089, 0.062, 0.072, 0.079,
            0.079, 0.072, 0.062, 0.079, 0.107),
    joint_weights=(1.5, 1.2, 1.0, 1.0, 1.2, 1.5, 1.5, 1.2, 1.0, 1.0, 1.2, 1.5, 1.0, 1.0),
    upper_body=(6, 7, 8, 9, 10, 11, 12, 13),
    torso=(9, 2),  # left shoulder to right hip, the LSP PCK normaliser
    groups={
        "head": (12, 13), "shoulder": (8, 9), "elbow": (7, 10), "wrist": (6, 11),
        "hip": (2, 3), "knee": (1, 4), "ankle": (0, 5),
    },
)

_LAYOUTS: dict[str, KeypointLayout] = {}


def register_layout(layout: KeypointLayout, *, overwrite: bool = False) -> KeypointLayout:
    """Make a layout available by name to configs, datasets and metrics."""
    if layout.name in _LAYOUTS and not overwrite:
        raise ValueError(f"keypoint layout {layout.name!r} is already registered")
    _LAYOUTS[layout.name] = layout
    return layout


def get_layout(name: str) -> KeypointLayout:
    try:
        return _LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown keypoint layout {name!r}; known: {', '.join(sorted(_LAYOUTS))}") from None


def list_layouts() -> list[str]:
    return sorted(_LAYOUTS)


for _layout in (COCO17, MPII16, LSP14):
    register_layout(_layout)


# OKS sigma of a joint no constant is known for: the mean of COCO's 17 (0.0669), rounded.
DEFAULT_OKS_SIGMA = round(sum(COCO17.sigmas) / len(COCO17.sigmas), 3)

# A side word at the start (left_x, left-x, left x, leftX, l_x) or the end (x_left, xLeft, x_l)
# of a name, compared lower-case; one-letter sides need a separator (l_hand, hand_r).
_SEP = r"[\s_-]"
_SIDE_PATTERNS = (
    re.compile(rf"^(left|right){_SEP}*(.+)$"),
    re.compile(rf"^([lr]){_SEP}+(.+)$"),
    re.compile(rf"^(.+?){_SEP}*(left|right)$"),
    re.compile(rf"^(.+?){_SEP}+([lr])$"),
)


def _side_of(name: str) -> tuple[str, str] | None:
    """("l" or "r", the rest with separators made "_") of a joint name, or None."""
    low = name.strip().lower()
    for i, pattern in enumerate(_SIDE_PATTERNS):
        m = pattern.match(low)
        if m:
            side, rest = (m.group(1), m.group(2)) if i < 2 else (m.group(2), m.group(1))
            rest = re.sub(rf"{_SEP}+", "_", rest).strip("_")
            if rest:
                return side[0], rest
    return None


def flip_pairs_from_names(names) -> tuple[tuple[int, int], ...]:
    """Left/right joint pairs read off the names: ``left_x``/``right_x``, ``l_x``/``r_x``,
    ``x_left``/``x_right``, ``leftX``/``rightX`` (case-insensitive, separators ``_``, ``-``
    or space), the rest of the two names equal up to case and separator. A joint with no
    partner mirrors onto itself; a name that two joints of one side share is a ValueError
    (which joint is its partner is unknown)."""
    sides: dict[str, dict[str, list[int]]] = {}
    for i, name in enumerate(names):
        found = _side_of(name)
        if found:
            sides.setdefault(found[1], {"l": [], "r": []})[found[0]].append(i)
    pairs = []
    for rest, by_side in sides.items():
        left, right = by_side["l"], by_side["r"]
        if len(left) > 1 or len(right) > 1:
            same = [names[i] for i in (left if len(left) > 1 else right)]
            raise ValueError(f"joints {', '.join(map(repr, same))} are the same side of {rest!r}: "
                             f"give the flip pairs by name")
        if left and right:
            pairs.append((left[0], right[0]))
    return tuple(sorted(pairs))


def _index_of(names: tuple[str, ...], name, what: str) -> int:
    if name not in names:
        raise ValueError(f"{what}: {name!r} is not a joint name (joints: {', '.join(names)})")
    return names.index(name)


def layout_from_names(name: str, names, skeleton=(), *, flip_pairs=None, sigmas=None,
                      torso=None) -> KeypointLayout:
    """A layout from joint names (e.g. a COCO keypoint category's), its ``skeleton`` as
    0-based index pairs. ``flip_pairs``: pairs of joint NAMES (default: read off the names,
    :func:`flip_pairs_from_names`; empty: none, flipping mirrors every joint onto itself).
    ``sigmas``: OKS sigmas, one per joint or one for all (default :data:`DEFAULT_OKS_SIGMA`).
    ``torso``: two joint names whose distance normalises PCK (default none: the box size).
    A mistake is a ValueError naming it."""
    names = tuple(names)
    if not names:
        raise ValueError("no joint names")
    if not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"joint names must be non-empty strings, got {list(names)!r}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"joint name(s) {', '.join(map(repr, twice))} appear more than once")
    if flip_pairs is None:
        pairs = flip_pairs_from_names(names)
    else:
        pairs = tuple((_index_of(names, a, "flip pair"), _index_of(names, b, "flip pair")) for a, b in flip_pairs)
        used = [i for p in pairs for i in p]
        if any(a == b for a, b in pairs) or len(set(used)) != len(used):
            raise ValueError("flip pairs: each joint may appear in one pair, with another joint "
                             f"(got {[list(p) for p in flip_pairs]})")
    k = len(names)
    if sigmas is None or len(sigmas) == 0:
        sig = (DEFAULT_OKS_SIGMA,) * k
    elif len(sigmas) in (1, k):
        sig = tuple(float(s) for s in sigmas) * (k if len(sigmas) == 1 else 1)
        if not all(np.isfinite(s) and s > 0 for s in sig):
            raise ValueError(f"OKS sigmas must be positive numbers, got {list(sigmas)}")
    else:
        raise ValueError(f"{len(sigmas)} OKS sigmas for {k} joints (give one per joint, or one for all)")
    torso_idx = None
    if torso:
        if len(torso) != 2 or torso[0] == torso[1]:
            raise ValueError(f"PCK torso: expected two different joint names, got {list(torso)}")
        torso_idx = (_index_of(names, torso[0], "PCK torso"), _index_of(names, torso[1], "PCK torso"))
    return KeypointLayout(name=name, names=names, flip_pairs=pairs,
                          skeleton=tuple((int(a), int(b)) for a, b in skeleton), sigmas=sig, torso=torso_idx)


def registered_layout(layout: KeypointLayout) -> bool:
    """Whether ``layout`` is the registered layout of its name (not a custom one)."""
    return _LAYOUTS.get(layout.name) == layout


def non_finite_joints(joints: np.ndarray) -> np.ndarray:
    """Joints (..., K, 3) as x, y, flag that claim a label (flag not 0) but hold NaN or
    infinity, as a (..., K) bool. JSON and .mat readers accept such values; compared with
    them, every distance is NaN (and COCOeval counts a NaN OKS as a match)."""
    joints = np.asarray(joints, dtype=np.float64)
    return (joints[..., 2] != 0) & ~np.isfinite(joints).all(axis=-1)
