"""Write a copy of LSPET's joints.mat whose left/right-mirrored labels are turned back.

A trained model predicts each training person (flip test, the box the LSP data source
uses). Where a limb group's labels (the legs: ankles, knees, hips; the arms: wrists,
elbows, shoulders) match the prediction far better mirrored than as they are (at least
``--min-hits`` of its joints labelled on both sides hit mirrored, ``--margin`` more than
as labelled; PCK@0.2 with the torso normaliser), the group's left and right labels are swapped. People
without both torso joints labelled are left as they are. Only images ``--first`` to
``--last`` change; the rest of the file is copied.

    python projects/lspet_sides/fix_sides.py lpn_50_lsp_256x192 \\
        --joints ../shared/data/lspet/joints.mat --images ../shared/data/lspet/images \\
        --out work_dirs/lspet_sides_fixed.mat
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import scipy.io as sio

from slimpose.data.base import read_image, read_mat
from slimpose.deploy.runtime import OnnxPoseEstimator
from slimpose.io import atomic_path
from slimpose.keypoints import LSP14
from slimpose.metrics.pck import torso_sizes

GROUPS = {"legs": (0, 1, 2, 3, 4, 5), "arms": (6, 7, 8, 9, 10, 11)}


def joint_boxes(xy: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """(N, 4) [x, y, w, h]: the extent of each person's labelled joints (at least 1 px)."""
    boxes = np.zeros((len(xy), 4))
    for i, (pts, lab) in enumerate(zip(xy, labelled)):
        if lab.any():
            lo, hi = pts[lab].min(0), pts[lab].max(0)
            boxes[i] = [*lo, *np.maximum(hi - lo, 1.0)]
    return boxes


def mirrored_groups(pred: np.ndarray, xy: np.ndarray, labelled: np.ndarray, margin: int = 2,
                    min_hits: int = 3, thr: float = 0.2) -> dict[str, np.ndarray]:
    """For each limb group, which people (N,) have labels that look mirrored."""
    flip = np.array(LSP14.flip_index)
    norm = torso_sizes(xy, labelled, LSP14.torso)
    has_torso = norm > 0
    limit = thr * np.where(has_torso, norm, np.inf)[:, None]
    with np.errstate(invalid="ignore"):
        as_labelled = (np.linalg.norm(pred - xy, axis=2) < limit) & labelled
        mirrored = (np.linalg.norm(pred - xy[:, flip], axis=2) < limit) & labelled & labelled[:, flip]
    out = {}
    for name, joints in GROUPS.items():
        own, swapped = as_labelled[:, joints].sum(1), mirrored[:, joints].sum(1)
        out[name] = has_torso & (swapped >= own + margin) & (swapped >= min_hits)
    return out


def unmirror(joints: np.ndarray, flagged: dict[str, np.ndarray]) -> np.ndarray:
    """(N, 14, 3) joints with each flagged group's left and right rows exchanged."""
    flip = LSP14.flip_index
    fixed = joints.copy()
    for name, people in flagged.items():
        group = list(GROUPS[name])
        partners = [flip[j] for j in group]
        fixed[np.ix_(people.nonzero()[0], group)] = joints[np.ix_(people.nonzero()[0], partners)]
    return fixed


def predict(model: str, images: Path, first: int, joints: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    estimator = OnnxPoseEstimator(model) if Path(model).exists() else OnnxPoseEstimator.from_pretrained(model)
    boxes = joint_boxes(joints[..., :2], labelled)
    pred = np.full((len(joints), 14, 2), np.nan)
    for i in np.nonzero(labelled.sum(1) >= 2)[0]:
        image = read_image(images / f"im{first + i:05d}.jpg")
        pred[i] = estimator(image, boxes[i:i + 1], flip=True)[0][0]
    return pred


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a shipped LSP-14 weight name or an exported ONNX file")
    ap.add_argument("--joints", type=Path, required=True, help="LSPET joints.mat, (14, 3, N)")
    ap.add_argument("--images", type=Path, required=True, help="its images/ folder")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--first", type=int, default=1)
    ap.add_argument("--last", type=int, default=8000)
    ap.add_argument("--margin", type=int, default=2)
    ap.add_argument("--min-hits", type=int, default=3)
    args = ap.parse_args(argv)
    raw = np.asarray(read_mat(args.joints, "joints")["joints"], dtype=np.float64)
    joints = np.transpose(raw[:, :, args.first - 1:args.last], (2, 0, 1))
    labelled = (joints[..., 0] > 0) & (joints[..., 1] > 0) & (joints[..., 2] > 0)
    pred = predict(args.model, args.images, args.first, joints, labelled)
    flagged = mirrored_groups(pred, joints[..., :2], labelled, args.margin, args.min_hits)
    for name, people in flagged.items():
        print(f"{name}: {int(people.sum())} of {len(people)} people mirrored back")
    out = raw.copy()
    out[:, :, args.first - 1:args.last] = np.transpose(unmirror(joints, flagged), (1, 2, 0))
    with atomic_path(args.out) as tmp:
        sio.savemat(tmp, {"joints": out})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
