"""MPII in the HRNet/MMPose JSON form (``mpii_train.json``, ``mpii_val.json``).

Each entry: ``image`` (file name), ``center`` [x, y] and ``scale`` (box height / 200,
MATLAB 1-based), ``joints`` 16 x [x, y], ``joints_vis`` 16 flags. As HRNet/MMPose load
it: the centre moves down by 15 px x scale (to avoid cutting the feet), 1-based becomes
0-based, the box is scale x 200 px square, padded by 1.25 and enlarged to the input's
aspect ratio. PCKh needs the head boxes of ``mpii_gt_val.mat`` (``headboxes_src``
2 x 2 x N, in the order of the JSON entries), as MMPose uses them; the ground-truth
joints are those of the JSON.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slimpose.data.base import DataSource, check_images_exist, load_json, read_mat, require_instances
from slimpose.data.transforms import BOX_PADDING, fix_aspect_ratio
from slimpose.data.types import PersonInstance
from slimpose.errors import DataError
from slimpose.keypoints import KeypointLayout, non_finite_joints

PIXEL_STD = 200.0


def load_headboxes(path: str | Path) -> np.ndarray:
    """``headboxes_src`` (2, 2, N) of an MPII ``.mat`` → (N, 2, 2): [instance, corner, xy]."""
    path = Path(path)
    mat = read_mat(path, "headbox_file")
    if "headboxes_src" not in mat:
        raise DataError(str(path), "headboxes_src", "missing from the .mat file")
    boxes = np.asarray(mat["headboxes_src"], dtype=np.float64)
    if boxes.ndim != 3 or boxes.shape[:2] != (2, 2):
        raise DataError(str(path), "headboxes_src", f"expected shape (2, 2, N), got {boxes.shape}")
    return boxes.transpose(2, 0, 1)


class MpiiSource(DataSource):
    def __init__(self, ann_file: str | Path, img_dir: str | Path, layout: KeypointLayout, aspect_ratio: float,
                 train: bool = True, headbox_file: str | Path = "", name: str = "mpii"):
        super().__init__(name=name, layout=layout, main_metric="PCKh")
        self.ann_file, self.img_dir = str(ann_file), Path(img_dir)
        self.headbox_file = str(headbox_file or "")
        entries = load_json(self.ann_file, "ann_file")
        if not isinstance(entries, list):
            raise DataError(self.ann_file, "(top level)", "expected a list of {image, center, scale, joints, "
                            "joints_vis}")
        headboxes = load_headboxes(self.headbox_file) if self.headbox_file else None
        if headboxes is not None and len(headboxes) != len(entries):
            raise DataError(self.headbox_file, "headboxes_src", f"{len(headboxes)} head boxes for {len(entries)} "
                            f"entries of {self.ann_file}")
        self._read(entries, aspect_ratio, headboxes)
        require_instances(self, self.ann_file, "(entries)")
        check_images_exist([inst.image_path for inst in self.instances], self.ann_file,
                           f"[].image (in {self.img_dir})")

    @classmethod
    def from_config(cls, ds, layout: KeypointLayout, aspect_ratio: float, train: bool) -> "MpiiSource":
        if not ds.img_dir:
            raise DataError(ds.ann_file or "config", "img_dir", "not set: the folder of the images")
        return cls(ds.ann_file, ds.img_dir, layout, aspect_ratio, train=train, headbox_file=ds.headbox_file,
                   name=ds.type)

    def _read(self, entries: list, aspect_ratio: float, headboxes: np.ndarray | None) -> None:
        src, k = self.ann_file, self.layout.num_keypoints
        for i, a in enumerate(entries):
            where = f"[{i}]"
            if not isinstance(a, dict):
                raise DataError(src, where, "not an object")
            for key in ("image", "center", "scale", "joints", "joints_vis"):
                if key not in a:
                    raise DataError(src, f"{where}.{key}", "missing")
            try:
                center = np.asarray(a["center"], dtype=np.float64).reshape(2)
                s = float(a["scale"])
            except (TypeError, ValueError):
                raise DataError(src, f"{where}.center/scale", f"expected [x, y] and a number, got "
                                f"{a['center']!r} and {a['scale']!r}") from None
            try:
                joints = np.asarray(a["joints"], dtype=np.float64)
                vis = np.asarray(a["joints_vis"], dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                raise DataError(src, f"{where}.joints", "not a list of numbers") from None
            if joints.shape != (k, 2) or vis.shape != (k,):
                raise DataError(src, f"{where}.joints", f"expected {k} x [x, y] joints and {k} joints_vis flags "
                                f"(the {self.layout.name!r} layout), got {joints.shape} and {vis.shape}")
            if not np.isfinite([*center, s]).all():
                self._skip("non_finite_box")
                continue
            if not s > 0 or center[0] == -1:
                self._skip("zero_area_box")
                continue
            non_finite = non_finite_joints(np.column_stack([joints, vis]))
            self._skip("non_finite_joints", int(non_finite.sum()))
            labelled = (vis > 0) & ~non_finite
            if not labelled.any():
                self._skip("no_keypoints")
                continue
            box = np.array([s, s]) * PIXEL_STD
            center = center.copy()
            center[1] += 15.0 * s  # HRNet/MMPose: move the centre down, scaled
            center -= 1.0  # MATLAB 1-based → 0-based
            scale = fix_aspect_ratio(box, aspect_ratio) * BOX_PADDING
            xy = np.where(labelled[:, None], joints - 1.0, 0.0).astype(np.float32)
            extra: dict = {"entry": i}
            if headboxes is not None:
                extra["headbox"] = headboxes[i]
            self.instances.append(PersonInstance(
                image_path=str(self.img_dir / str(a["image"])), image_id=i,
                center=center.astype(np.float32), scale=scale.astype(np.float32), keypoints=xy,
                visible=labelled.astype(np.float32), area=float(box[0] * box[1]), box_score=1.0,
                instance_id=i, extra=extra))

    def evaluate(self, keypoints, scores, indices, out_dir: Path | None = None) -> dict[str, float]:
        """PCKh@0.5 (and @0.1) against the JSON joints, head sizes from ``headbox_file``."""
        from slimpose.metrics.pck import mpii_head_sizes, mpii_pckh

        if not self.headbox_file:
            raise DataError(self.ann_file, "headbox_file", "PCKh needs the head boxes (mpii_gt_val.mat): set "
                            "data.val.headbox_file")
        keypoints, scores, indices = self._check_eval_inputs(keypoints, scores, indices)
        insts = [self.instances[i] for i in indices]
        gt = np.stack([inst.keypoints for inst in insts]).astype(np.float64)
        mask = np.stack([inst.visible > 0 for inst in insts])
        head_sizes = mpii_head_sizes(np.stack([inst.extra["headbox"] for inst in insts]))
        metrics = mpii_pckh(keypoints, gt, mask, head_sizes, self.layout)
        self.write_predictions(out_dir, keypoints, scores, indices)
        return {k: float(v) for k, v in metrics.items()}
