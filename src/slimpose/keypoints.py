"""Keypoint layouts: joint names, flip pairs, skeleton, OKS sigmas and loss weights.

A layout is everything the data pipeline, the codecs, the metrics and the drawing code
need to know about a keypoint set. The built-in ones are COCO-17, MPII-16 and LSP-14;
``register_layout`` adds a custom one. :func:`non_finite_joints` finds labelled joints
holding NaN or infinity (the data readers and the COCO metric refuse them). This module is
torch-free (the deploy runtime uses it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


def non_finite_joints(joints: np.ndarray) -> np.ndarray:
    """Joints (..., K, 3) as x, y, flag that claim a label (flag not 0) but hold NaN or
    infinity, as a (..., K) bool. JSON and .mat readers accept such values; compared with
    them, every distance is NaN (and COCOeval counts a NaN OKS as a match)."""
    joints = np.asarray(joints, dtype=np.float64)
    return (joints[..., 2] != 0) & ~np.isfinite(joints).all(axis=-1)
