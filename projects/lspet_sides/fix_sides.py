"""Write a copy of LSPET's joints.mat whose left/right-mirrored labels are turned back.

A trained model predicts each person the LSP data source reads (its box, the flip test).
Where a limb group's labels (the legs: ankles, knees, hips; the arms: wrists, elbows,
shoulders) match the prediction far better mirrored than as they are (at least
``--min-hits`` of its joints labelled on both sides hit mirrored, ``--margin`` more than
as labelled; PCK@0.2 with the torso normaliser), the group's left and right labels are
swapped. People without both torso joints labelled are left as they are. Only images
``--first`` to ``--last`` change; the rest of the file is copied.

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

from slimpose.data.base import read_image
from slimpose.data.lsp import LspSource, load_joints
from slimpose.deploy.runtime import OnnxPoseEstimator
from slimpose.io import atomic_path
from slimpose.keypoints import LSP14
from slimpose.metrics.pck import torso_sizes
from slimpose.metrics.sides import limb_groups, mirrored_limbs


def unmirror(joints: np.ndarray, flagged: dict[str, np.ndarray]) -> np.ndarray:
    """(N, 14, 3) joints with each flagged limb's left and right rows exchanged (limbs as
    :func:`slimpose.metrics.sides.limb_groups` names them)."""
    fixed = joints.copy()
    limbs = limb_groups(LSP14)
    for name, people in flagged.items():
        group = list(limbs[name])
        rows = people.nonzero()[0]
        fixed[np.ix_(rows, group)] = joints[np.ix_(rows, [LSP14.flip_index[j] for j in group])]
    return fixed


def predict(estimator: OnnxPoseEstimator, source: LspSource, first: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Flip-test predictions (count, 14, 2) of images first..first+count-1 (NaN where the
    data source skips the person) and which of their joints are labelled (count, 14)."""
    pred = np.full((count, 14, 2), np.nan)
    labelled = np.zeros((count, 14), bool)
    for person in source.instances:
        row = person.image_id - first
        labelled[row] = person.visible > 0
        pred[row] = estimator(read_image(person.image_path), person.extra["bbox"][None], flip=True)[0][0]
    return pred, labelled


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
    joints, variant = load_joints(args.joints)
    if variant != "lspet":
        raise SystemExit(f"{args.joints}: joints: an LSP file (3, 14, N); this script reads LSPET's (14, 3, N)")
    model = args.model
    estimator = OnnxPoseEstimator(model) if Path(model).exists() else OnnxPoseEstimator.from_pretrained(model)
    h, w = estimator.input_size
    source = LspSource(args.joints, args.images, LSP14, w / h, first=args.first, last=args.last)
    span = joints[args.first - 1:args.last]
    pred, labelled = predict(estimator, source, args.first, len(span))
    norm = torso_sizes(span[..., :2], labelled, LSP14.torso)
    limbs = mirrored_limbs(pred, span[..., :2], labelled, LSP14, norm, margin=args.margin, min_hits=args.min_hits)
    flagged = {name: looks_mirrored for name, (looks_mirrored, _, _) in limbs.items()}
    for name, people in flagged.items():
        print(f"{name}: {int(people.sum())} of {len(people)} people mirrored back")
    out = joints.copy()
    out[args.first - 1:args.last] = unmirror(span, flagged)
    with atomic_path(args.out) as tmp:
        sio.savemat(tmp, {"joints": out.transpose(1, 2, 0)})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
