"""COCO-format keypoint data (COCO 2017, coco-mini, the synthetic data, custom sets).

Ground-truth boxes, as MMPose/HRNet train on them: crowd annotations and annotations
with no labelled keypoint are skipped; boxes are clipped to the image
(``x2 = min(x + w, width - 1)``) and empty ones skipped; a labelled keypoint outside the
image is an annotation error and is unlabelled. A labelled joint holding NaN or infinity
is unlabelled, an annotation whose box does is skipped, also in the ground truth that
``evaluate`` scores against. Every skip is counted in ``skipped``.
With ``det_file`` (COCO results JSON of person detections) the instances are the
detections of category 1 with score > ``det_score_thr`` (evaluation only).
``first``/``last`` (1-based, inclusive) keep the images at those places of the file's
``images`` list, e.g. to hold a few training images out as a validation split; the
annotations (or detections) of the others are skipped and left out of the evaluation.
"""

from __future__ import annotations

import reprlib
from pathlib import Path

import numpy as np

from slimpose.data.base import DataSource, check_images_exist, load_json, require_instances
from slimpose.data.transforms import BOX_PADDING, box_to_center_scale
from slimpose.data.types import PersonInstance
from slimpose.errors import DataError
from slimpose.io import write_json_atomic
from slimpose.keypoints import KeypointLayout, non_finite_joints, registered_layout
from slimpose.metrics.coco import (
    check_id,
    check_keypoint_annotation,
    is_finite_number,
    is_number_list,
)


def _plain(value):
    """json.dumps fallback for numpy scalars and arrays."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class CocoSource(DataSource):
    def __init__(self, ann_file: str | Path, img_dir: str | Path, layout: KeypointLayout, aspect_ratio: float,
                 train: bool = True, det_file: str | Path = "", det_score_thr: float = 0.0, name: str = "coco",
                 first: int | None = None, last: int | None = None):
        super().__init__(name=name, layout=layout, main_metric="AP")
        self.ann_file = str(ann_file)
        self.img_dir = Path(img_dir)
        self.aspect_ratio = aspect_ratio
        self.det_file = str(det_file or "")
        data = load_json(self.ann_file, "ann_file")
        images = self._read_images(data)
        self.kept_ids = None if first is None and last is None else self._image_range(images, first, last)
        if self.det_file:
            if train:
                raise DataError(self.det_file, "det_file", "detections carry no keypoints: use det_file for "
                                "validation only")
            self._read_detections(images, det_score_thr)
            require_instances(self, self.det_file, "detections")
        else:
            self._read_annotations(data, images)
            require_instances(self, self.ann_file, "annotations")
        check_images_exist([inst.image_path for inst in self.instances], self.ann_file,
                           f"images[].file_name (in {self.img_dir})")

    @classmethod
    def from_config(cls, ds, layout: KeypointLayout, aspect_ratio: float, train: bool) -> "CocoSource":
        if not ds.img_dir:
            raise DataError(ds.ann_file or "config", "img_dir", "not set: the folder of the images")
        return cls(ds.ann_file, ds.img_dir, layout, aspect_ratio, train=train,
                   det_file=ds.det_file, det_score_thr=ds.det_score_thr, name=ds.type, first=ds.first, last=ds.last)

    def _image_range(self, images: dict, first: int | None, last: int | None) -> set:
        """The ids of the images at places first..last (1-based) of the file's list."""
        n = len(images)
        first = 1 if first is None else int(first)
        last = n if last is None else int(last)
        if not 1 <= first <= last <= n:
            raise DataError(self.ann_file, "first/last", f"range {first}..{last} is not inside 1..{n} (the images "
                            "of the file)")
        return set(list(images)[first - 1:last])

    def _outside_range(self, image_id) -> bool:
        if self.kept_ids is not None and image_id not in self.kept_ids:
            self._skip("outside_first_last")
            return True
        return False

    # ------------------------------------------------------------------ reading
    def _read_images(self, data) -> dict:
        src = self.ann_file
        if not isinstance(data, dict):
            raise DataError(src, "(top level)", "expected a JSON object with 'images' and 'annotations'")
        for key in ("images", "annotations"):
            if not isinstance(data.get(key), list):
                raise DataError(src, key, "missing or not a list")
        images = {}
        for i, img in enumerate(data["images"]):
            if not isinstance(img, dict):
                raise DataError(src, f"images[{i}]", "not an object")
            for key in ("id", "file_name"):
                if key not in img:
                    raise DataError(src, f"images[{i}].{key}", "missing")
            image_id = check_id(img["id"], src, f"images[{i}].id")
            if not isinstance(img["file_name"], str) or not img["file_name"]:
                raise DataError(src, f"images[{i}].file_name", f"expected a file name, got {img['file_name']!r}")
            # width/height are optional (then boxes and joints are not checked against the image)
            size = (img.get("width", np.inf), img.get("height", np.inf))
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in size):
                raise DataError(src, f"images[{i}].width/height", f"expected positive numbers, got "
                                f"{size[0]!r} x {size[1]!r}")
            images[image_id] = img
        return images

    def _read_annotations(self, data: dict, images: dict) -> None:
        src, k = self.ann_file, self.layout.num_keypoints
        for i, ann in enumerate(data["annotations"]):
            image_id, kpts, bbox = check_keypoint_annotation(ann, f"annotations[{i}]", src, k, images,
                                                             f"the {self.layout.name!r} layout")
            if self._outside_range(image_id):
                continue
            # NaN or infinity, which JSON readers accept, would put NaN into the crops and the scores
            if not np.isfinite(bbox).all():
                self._skip("non_finite_box")
                continue
            non_finite = non_finite_joints(kpts)
            self._skip("non_finite_joints", int(non_finite.sum()))
            kpts[non_finite] = 0.0
            if ann.get("iscrowd", 0):
                self._skip("crowd")
                continue
            if not (kpts[:, 2] > 0).any():
                self._skip("no_keypoints")
                continue
            img = images[image_id]
            width, height = float(img.get("width", np.inf)), float(img.get("height", np.inf))
            labelled = kpts[:, 2] > 0
            outside = labelled & ((kpts[:, 0] < 0) | (kpts[:, 1] < 0) | (kpts[:, 0] > width) | (kpts[:, 1] > height))
            if outside.any():
                self._skip("joints_outside_image", int(outside.sum()))
                labelled &= ~outside
                if not labelled.any():
                    self._skip("no_keypoints")
                    continue
            x, y, w, h = bbox
            x1, y1 = np.clip(x, 0, width - 1), np.clip(y, 0, height - 1)
            x2, y2 = np.clip(x + w, 0, width - 1), np.clip(y + h, 0, height - 1)
            if not (x2 > x1 and y2 > y1):
                self._skip("zero_area_box")
                continue
            center, scale = box_to_center_scale([x1, y1, x2 - x1, y2 - y1], self.aspect_ratio)
            xy = np.where(labelled[:, None], kpts[:, :2], 0.0).astype(np.float32)
            area = float(ann.get("area") or 0.0) or float((x2 - x1) * (y2 - y1))
            self.instances.append(PersonInstance(
                image_path=str(self.img_dir / img["file_name"]), image_id=image_id,
                center=center.astype(np.float32), scale=scale.astype(np.float32), keypoints=xy,
                visible=labelled.astype(np.float32), area=area, box_score=1.0,
                instance_id=int(ann.get("id", -1)),
                extra={"flags": np.where(labelled, kpts[:, 2], 0).astype(np.int8),
                       "bbox": np.array([x1, y1, x2 - x1, y2 - y1], np.float32)}))

    def _read_detections(self, images: dict, score_thr: float) -> None:
        src, k = self.det_file, self.layout.num_keypoints
        dets = load_json(src, "det_file")
        if not isinstance(dets, list):
            raise DataError(src, "(top level)", "expected a COCO results list of {image_id, category_id, bbox, score}")
        for i, det in enumerate(dets):
            where = f"[{i}]"
            if not isinstance(det, dict):
                raise DataError(src, where, "not an object")
            for key in ("image_id", "bbox", "score"):
                if key not in det:
                    raise DataError(src, f"{where}.{key}", "missing")
            if det.get("category_id", 1) != 1:
                self._skip("not_person")
                continue
            # a detector that wrote NaN is broken: its boxes are refused, not skipped
            if not (is_number_list(det["bbox"], 4) and np.isfinite(det["bbox"]).all()):
                raise DataError(src, f"{where}.bbox", f"expected [x, y, w, h] finite numbers, got "
                                f"{reprlib.repr(det['bbox'])}")
            if not is_finite_number(det["score"]):
                raise DataError(src, f"{where}.score", f"expected a finite number, got {reprlib.repr(det['score'])}")
            image_id = check_id(det["image_id"], src, f"{where}.image_id")
            if image_id not in images:
                raise DataError(src, f"{where}.image_id", f"{image_id!r} is not an image of {self.ann_file}")
            if self._outside_range(image_id):
                continue
            if not det["score"] > score_thr:
                self._skip("low_score")
                continue
            x, y, w, h = (float(v) for v in det["bbox"])
            if not (w > 0 and h > 0):
                self._skip("zero_area_box")
                continue
            center, scale = box_to_center_scale([x, y, w, h], self.aspect_ratio)
            img = images[image_id]
            self.instances.append(PersonInstance(
                image_path=str(self.img_dir / img["file_name"]), image_id=image_id,
                center=center.astype(np.float32), scale=scale.astype(np.float32),
                keypoints=np.zeros((k, 2), np.float32), visible=np.zeros(k, np.float32),
                area=w * h, box_score=float(det["score"]), instance_id=-1,
                extra={"bbox": np.array([x, y, w, h], np.float32)}))

    # ------------------------------------------------------------------ evaluation
    def _ground_truth(self):
        """The annotations that COCOeval scores against: the file less what this source
        refused (joints and boxes holding NaN or infinity, as in ``_read_annotations``) and,
        for a truncated source or one of ``first``/``last``, only the images it covers (so a
        run is not scored on images it did not see)."""
        from slimpose.metrics.coco import ground_truth_coco

        data = load_json(self.ann_file)
        covered = {inst.image_id for inst in self.instances} if self.skipped.get("limit") else self.kept_ids
        annotations = []
        for ann in data["annotations"]:
            if (covered is not None and ann["image_id"] not in covered) or not np.isfinite(ann["bbox"]).all():
                continue
            kpts = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
            kpts[non_finite_joints(kpts)] = 0.0
            annotations.append({**ann, "keypoints": kpts.reshape(-1).tolist()})
        images = data["images"] if covered is None else [im for im in data["images"] if im["id"] in covered]
        return ground_truth_coco({**data, "images": images, "annotations": annotations}, self.ann_file)

    def evaluate(self, keypoints, scores, indices, out_dir: Path | None = None) -> dict[str, float]:
        """OKS AP via pycocotools: rescoring (box score x mean keypoint score above 0.2),
        OKS-NMS at 0.9 per image, then COCOeval. Area for rescoring/NMS is the unpadded
        box area, scale w*h / 1.25^2, as MMPose."""
        from slimpose.metrics.coco import coco_keypoint_eval, coco_topdown_results

        keypoints, scores, indices = self._check_eval_inputs(keypoints, scores, indices)
        insts = [self.instances[i] for i in indices]
        image_ids = np.array([inst.image_id for inst in insts], dtype=np.int64)
        box_scores = np.array([inst.box_score for inst in insts], dtype=np.float64)
        areas = np.array([float(inst.scale[0]) * float(inst.scale[1]) / BOX_PADDING ** 2 for inst in insts])
        sigmas = self.layout.sigmas_array()
        results = coco_topdown_results(image_ids, keypoints, scores, box_scores, areas, sigmas)
        if out_dir is not None:
            out_dir = Path(out_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(out_dir / "results_keypoints.json", results, indent=None, default=_plain)
        metrics = coco_keypoint_eval(self._ground_truth(), results, sigmas=sigmas)
        if not self.det_file and not registered_layout(self.layout):
            # A layout of the data's own (data.layout: from_data): PCK too, at ground-truth boxes.
            metrics.update(self._pck(keypoints, insts))
        return {k: float(v) for k, v in metrics.items()}

    def _pck(self, keypoints: np.ndarray, insts) -> dict[str, float]:
        """PCK of the predictions of ground-truth instances: normalised by the layout's
        torso pair (data.pck_torso) where it names one, else by the box's longer side."""
        from slimpose.metrics.pck import layout_pck

        gt = np.stack([inst.keypoints for inst in insts])
        mask = np.stack([inst.visible for inst in insts]) > 0
        boxes = np.stack([inst.extra["bbox"] for inst in insts])
        return layout_pck(keypoints, gt, mask, self.layout, boxes_xywh=boxes)
