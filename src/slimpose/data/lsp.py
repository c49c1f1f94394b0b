"""LSP and LSP-extended: ``joints.mat`` + ``images/imNNNN(N).jpg``; one person per image.

Orientation tells the two apart:

- LSPET, (14, 3, N): third column 1 = labelled (visible), 0 = not labelled; missing
  joints also carry non-positive coordinates. A joint is labelled when its flag is 1
  AND both coordinates are positive (9 joints of the 9000 in the shared copy have flag 1
  and a coordinate <= 0; they sit on or just beyond the image border and are counted
  in ``skipped['joints_nonpositive']``).
- LSP, (3, 14, N): every joint is annotated, occluded ones included; the third row is a
  flag with the opposite meaning to LSPET's (0 = visible, 1 = occluded — CPM, OpenPose
  and pytorch-pose convert it with ``1 - row``). So all joints with positive
  coordinates are labelled (target weight 1) and the flag is kept, inverted to
  1 = visible, in ``extra['visible_flag']``; it does not change the training target.

No boxes ship with LSP: the box is the extent of the labelled joints, enlarged to the
input's aspect ratio and padded by 1.25. Images are numbered from 1 in ``mat`` order;
``first``/``last`` (1-based, inclusive) select a range. File names use 4 digits in LSP
(im0001.jpg) and 5 in LSPET (im00001.jpg): the width is the one whose file exists.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from slimpose.data.base import DataSource, check_images_exist, read_mat, require_instances
from slimpose.data.transforms import box_to_center_scale
from slimpose.data.types import PersonInstance
from slimpose.errors import DataError
from slimpose.keypoints import KeypointLayout, non_finite_joints


# What scipy.io.loadmat makes of MATLAB variables that are not numeric arrays.
_MAT_KINDS = {"U": "text (a char array)", "S": "text (a char array)", "O": "a cell array", "V": "a struct",
              "b": "logical values"}


def load_joints(path: str | Path, num_keypoints: int = 14) -> tuple[np.ndarray, str]:
    """``joints.mat`` → (N, K, 3) array and the variant, ``"lsp"`` or ``"lspet"``."""
    path = Path(path)
    mat = read_mat(path, "ann_file")
    if "joints" not in mat:
        raise DataError(str(path), "joints", "missing from the .mat file")
    j = np.asarray(mat["joints"])
    if j.dtype.kind not in "iuf":
        kind = _MAT_KINDS.get(j.dtype.kind, f"values of type {j.dtype.name}")
        raise DataError(str(path), "joints", f"expected a numeric array, got {kind}")
    j = j.astype(np.float64)
    if j.ndim == 2:
        j = j[..., None]
    if j.ndim == 3 and j.shape[:2] == (3, num_keypoints):
        return j.transpose(2, 1, 0), "lsp"
    if j.ndim == 3 and j.shape[:2] == (num_keypoints, 3):
        return j.transpose(2, 0, 1), "lspet"
    raise DataError(str(path), "joints", f"expected shape (3, {num_keypoints}, N) (LSP) or ({num_keypoints}, 3, N) "
                    f"(LSPET), got {j.shape}")


def image_name_width(img_dir: Path, number: int) -> int:
    for width in (5, 4, 6):
        if (img_dir / f"im{number:0{width}d}.jpg").is_file():
            return width
    raise DataError(str(img_dir / f"im{number:05d}.jpg"), "img_dir",
                    f"image file not found (nor im{number:04d}.jpg)")


class LspSource(DataSource):
    def __init__(self, ann_file: str | Path, img_dir: str | Path | None, layout: KeypointLayout, aspect_ratio: float,
                 first: int | None = None, last: int | None = None, name: str = "lsp"):
        super().__init__(name=name, layout=layout, main_metric="PCK")
        self.ann_file = str(ann_file)
        self.img_dir = Path(img_dir) if img_dir else Path(self.ann_file).parent / "images"
        joints, self.variant = load_joints(self.ann_file, layout.num_keypoints)
        n = len(joints)
        first = 1 if first is None else int(first)
        last = n if last is None else int(last)
        if not (1 <= first <= last <= n):
            raise DataError(self.ann_file, "first/last", f"range {first}..{last} is not inside 1..{n} "
                            f"(the images of joints.mat)")
        width = image_name_width(self.img_dir, first)
        self._read(joints[first - 1:last], first, width, aspect_ratio)
        require_instances(self, self.ann_file, f"joints (images {first}..{last})")
        check_images_exist([inst.image_path for inst in self.instances], self.ann_file,
                           f"images (in {self.img_dir})")

    @classmethod
    def from_config(cls, ds, layout: KeypointLayout, aspect_ratio: float, train: bool) -> "LspSource":
        return cls(ds.ann_file, ds.img_dir or None, layout, aspect_ratio, first=ds.first, last=ds.last, name=ds.type)

    def _read(self, joints: np.ndarray, first: int, width: int, aspect_ratio: float) -> None:
        """joints (n, K, 3) of images first..first+n-1, vectorised (LSPET has 10,000)."""
        xy, flag = joints[..., :2], joints[..., 2]
        # LSP's flag marks occlusion, not labelling: there every joint claims a label
        non_finite = non_finite_joints(joints) if self.variant == "lspet" else ~np.isfinite(joints).all(axis=-1)
        self._skip("non_finite_joints", int(non_finite.sum()))
        positive = (xy > 0).all(axis=-1) & ~non_finite
        if self.variant == "lspet":
            labelled = (flag > 0) & positive
            self._skip("joints_nonpositive", int(((flag > 0) & ~positive & ~non_finite).sum()))
        else:
            labelled = positive
        big = np.where(labelled[..., None], xy, np.inf)
        lo = big.min(axis=1)
        hi = np.where(labelled[..., None], xy, -np.inf).max(axis=1)
        enough = labelled.sum(axis=1) >= 2
        wh = np.where(enough[:, None], hi - lo, 0.0)
        degenerate = enough & (wh < 1).all(axis=1)
        self._skip("too_few_joints", int((~enough).sum()))
        self._skip("zero_area_box", int(degenerate.sum()))
        keep = enough & ~degenerate
        boxes = np.concatenate([np.where(keep[:, None], lo, 0.0), wh], axis=1)
        centers, scales = box_to_center_scale(boxes, aspect_ratio)
        kpts = np.where(labelled[..., None], xy, 0.0).astype(np.float32)
        folder = str(self.img_dir)
        for i in np.nonzero(keep)[0]:
            number = first + int(i)
            extra = {"bbox": boxes[i].astype(np.float32)}
            if self.variant == "lsp":
                extra["visible_flag"] = (flag[i] == 0).astype(np.int8)
            self.instances.append(PersonInstance(
                image_path=os.path.join(folder, f"im{number:0{width}d}.jpg"), image_id=number,
                center=centers[i].astype(np.float32), scale=scales[i].astype(np.float32), keypoints=kpts[i],
                visible=labelled[i].astype(np.float32), area=float(max(wh[i, 0], 1) * max(wh[i, 1], 1)),
                box_score=1.0, instance_id=number, extra=extra))

    def evaluate(self, keypoints, scores, indices, out_dir: Path | None = None) -> dict[str, float]:
        """PCK@0.2 normalised by the torso (left shoulder to right hip), labelled joints only."""
        from slimpose.metrics.pck import lsp_pck

        keypoints, scores, indices = self._check_eval_inputs(keypoints, scores, indices)
        gt = np.stack([self.instances[i].keypoints for i in indices]).astype(np.float64)
        mask = np.stack([self.instances[i].visible > 0 for i in indices])
        metrics = lsp_pck(keypoints, gt, mask, self.layout, thr=0.2)
        self.write_predictions(out_dir, keypoints, scores, indices)
        return {k: float(v) for k, v in metrics.items()}
