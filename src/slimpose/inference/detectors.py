"""Person detectors for top-down pose estimation (numpy + OpenCV + onnxruntime only).

A detector is any callable ``detector(image_bgr, image_id=None) -> (boxes, scores)``
with ``boxes`` (N, 4) float32 xyxy in image pixels and ``scores`` (N,) float32.
``image_id`` only matters to detectors that look boxes up per image (a boxes file).

``OnnxDetector`` reads the detector ONNX files users have; the format is recognised
from the graph's inputs and outputs:

- YOLOX raw head (Megvii export): one output (1, N, 5 + C), N = anchor points of
  strides 8/16/32; letterbox top-left with grey 114, BGR 0-255.
- YOLOX end-to-end (MMDeploy / rtmlib): outputs ``dets`` (1, N, 5) xyxy + score in
  input pixels and ``labels`` (1, N); NMS already done; same preprocessing.
- NanoDet (GFL head): ``cls_pred_stride_S`` (1, n, C) and ``dis_pred_stride_S``
  (1, n, 4 x bins); plain resize, BGR, mean/std normalisation.
- YOLOv8 / YOLO11 (Ultralytics): one output (1, 4 + C, N) of cx, cy, w, h and class
  scores; centred letterbox with grey 114, RGB / 255.
"""

from __future__ import annotations

import json
import re
import reprlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from slimpose.errors import DataError, SlimposeError
from slimpose.metrics.coco import is_finite_number, is_number_list

YOLOX_STRIDES = (8, 16, 32)
NANODET_MEAN_BGR = (103.53, 116.28, 123.675)
NANODET_STD_BGR = (57.375, 57.12, 58.395)
PAD_VALUE = 114


class DetectorError(SlimposeError):
    """A detector file or boxes file that cannot be used."""


def empty_detections() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)


def clip_boxes(boxes_xyxy: np.ndarray, image_shape) -> np.ndarray:
    h, w = image_shape[:2]
    out = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4).copy()
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out


def nms(boxes_xyxy: np.ndarray, scores: np.ndarray, score_thr: float, iou_thr: float) -> np.ndarray:
    """Indices kept by OpenCV's greedy NMS, best first."""
    if not len(boxes_xyxy):
        return np.zeros(0, np.int64)
    xywh = np.concatenate([boxes_xyxy[:, :2], boxes_xyxy[:, 2:] - boxes_xyxy[:, :2]], axis=1)
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.astype(float).tolist(), float(score_thr), float(iou_thr))
    return np.asarray(keep, dtype=np.int64).reshape(-1)


# --------------------------------------------------------------------------- simple detectors


class WholeImageDetector:
    """The whole image is one person box (score 1): one person filling the frame."""

    def __call__(self, image_bgr: np.ndarray, image_id=None) -> tuple[np.ndarray, np.ndarray]:
        h, w = image_bgr.shape[:2]
        return np.array([[0, 0, w, h]], np.float32), np.ones(1, np.float32)

    def __repr__(self) -> str:
        return "WholeImageDetector()"


def image_keys(image_id) -> list:
    """Keys under which a boxes file may list an image: the id itself, and for a path its
    file name, its stem and the number in a COCO file name (000000000139.jpg → 139)."""
    if image_id is None:
        return []
    if isinstance(image_id, (int, np.integer)):
        return [int(image_id)]
    text = str(image_id)
    name = Path(text).name
    stem = Path(text).stem
    keys: list = [text, name, stem]
    if stem.isdigit():
        keys.append(int(stem))
    return keys


class BoxesFileDetector:
    """Person boxes read from a COCO detection results JSON (a list of ``image_id``,
    ``category_id``, ``bbox`` [x, y, w, h], ``score``), or the ground-truth boxes of a COCO
    annotation file (score 1, crowd regions left out), looked up per image by id or file
    name. A box that does not overlap its image is refused (a file for other images);
    boxes partly outside are clipped."""

    def __init__(self, path: str | Path, score_thr: float = 0.0, category_id: int = 1):
        self.path = Path(path)
        self.score_thr = float(score_thr)
        self.by_image: dict = {}
        for i, rec in enumerate(self._read(self.path)):
            field = f"[{i}]"
            if not isinstance(rec, dict) or "image_id" not in rec or "bbox" not in rec:
                raise DataError(str(self.path), field, "expected an object with image_id and bbox")
            if rec.get("category_id", category_id) != category_id:
                continue
            image_id = rec["image_id"]
            # an id, or the image's file name
            if isinstance(image_id, bool) or not isinstance(image_id, (int, str)):
                raise DataError(str(self.path), f"{field}.image_id", f"expected an id or a file name, got "
                                f"{reprlib.repr(image_id)}")
            box = rec["bbox"]
            if not (is_number_list(box, 4) and all(map(is_finite_number, box))):
                raise DataError(str(self.path), f"{field}.bbox", f"expected [x, y, w, h] finite numbers, "
                                f"got {reprlib.repr(box)}")
            if box[2] <= 0 or box[3] <= 0:
                raise DataError(str(self.path), f"{field}.bbox", f"width and height must be > 0, got {box!r}")
            score = rec.get("score", 1.0)
            if not is_finite_number(score):
                raise DataError(str(self.path), f"{field}.score", f"expected a finite number, got "
                                f"{reprlib.repr(score)}")
            self.by_image.setdefault(image_id, []).append((i, [*box, float(score)]))

    @staticmethod
    def _read(path: Path) -> list:
        if not path.is_file():
            raise DataError(str(path), "boxes", "file not found")
        try:
            data = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise DataError(str(path), "boxes", f"not valid JSON ({e})") from None
        if isinstance(data, dict) and isinstance(data.get("annotations"), list):
            # a COCO annotation file: its (non-crowd) boxes, as a detector with score 1 (the GT-box protocol)
            return [{"image_id": a.get("image_id"), "category_id": a.get("category_id", 1), "bbox": a.get("bbox"),
                     "score": 1.0} for a in data["annotations"] if isinstance(a, dict) and not a.get("iscrowd")]
        if not isinstance(data, list):
            raise DataError(str(path), "boxes", "expected a COCO detection results list or a COCO annotation file")
        return data

    def __call__(self, image_bgr: np.ndarray, image_id=None) -> tuple[np.ndarray, np.ndarray]:
        if image_id is None:
            raise DetectorError(f"{self.path}: boxes are per image; this frame has no image id or file name")
        records = next((self.by_image[k] for k in image_keys(image_id) if k in self.by_image), [])
        records = [(i, r) for i, r in records if r[4] >= self.score_thr]
        if not records:
            return empty_detections()
        rows = np.asarray([r for _, r in records], np.float32)
        boxes = np.concatenate([rows[:, :2], rows[:, :2] + rows[:, 2:4]], axis=1)
        clipped = clip_boxes(boxes, image_bgr.shape)
        outside = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
        if outside.any():
            i = records[int(np.argmax(outside))][0]
            h, w = image_bgr.shape[:2]
            raise DataError(str(self.path), f"[{i}].bbox", f"box {rows[int(np.argmax(outside)), :4].tolist()} lies "
                            f"outside image {image_id} ({w}x{h}); is this the boxes file of these images?")
        return clipped, rows[:, 4].copy()

    def __repr__(self) -> str:
        return f"BoxesFileDetector({str(self.path)!r}, images={len(self.by_image)})"


# --------------------------------------------------------------------------- ONNX detectors


@dataclass(frozen=True)
class Preprocessed:
    """A network input and how to map its boxes back: image = (input - offset) / ratio."""

    tensor: np.ndarray
    ratio: np.ndarray  # (2,) x, y
    offset: np.ndarray  # (2,) x, y

    def to_image(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        off = np.tile(self.offset, 2)
        ratio = np.tile(self.ratio, 2)
        return ((boxes_xyxy - off) / ratio).astype(np.float32)


def letterbox(image_bgr: np.ndarray, size: tuple[int, int], center: bool) -> tuple[np.ndarray, float, np.ndarray]:
    """Resize keeping the aspect ratio into ``size`` (H, W), padded with grey 114 at the
    bottom/right (``center=False``, YOLOX) or on both sides (Ultralytics)."""
    h, w = image_bgr.shape[:2]
    r = min(size[0] / h, size[1] / w)
    nh, nw = int(round(h * r)), int(round(w * r))
    canvas = np.full((size[0], size[1], 3), PAD_VALUE, np.uint8)
    top, left = ((size[0] - nh) // 2, (size[1] - nw) // 2) if center else (0, 0)
    canvas[top:top + nh, left:left + nw] = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return canvas, r, np.array([left, top], np.float32)


def to_nchw(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)


def anchor_points(size: tuple[int, int], strides, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid cell positions (M, 2) in cells (x, y) + ``offset``, and their strides (M,), stride by stride."""
    points, point_strides = [], []
    for s in strides:
        gh, gw = -(-size[0] // s), -(-size[1] // s)
        ys, xs = np.mgrid[0:gh, 0:gw]
        points.append(np.stack([xs.ravel(), ys.ravel()], axis=1) + offset)
        point_strides.append(np.full(gh * gw, s, np.float32))
    return np.concatenate(points).astype(np.float32), np.concatenate(point_strides)


def num_anchor_points(size: tuple[int, int], strides=YOLOX_STRIDES) -> int:
    return sum(-(-size[0] // s) * -(-size[1] // s) for s in strides)


def _static_dim(d) -> int | None:
    return int(d) if isinstance(d, (int, np.integer)) and d > 0 else None


class _Format:
    """One detector output format: preprocessing and decoding to input-pixel boxes."""

    name = ""

    def preprocess(self, image_bgr: np.ndarray, size: tuple[int, int]) -> Preprocessed:
        canvas, r, offset = letterbox(image_bgr, size, center=False)
        return Preprocessed(to_nchw(canvas), np.array([r, r], np.float32), offset)

    def decode(self, outputs: dict, size, person_class: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """→ boxes xyxy (M, 4) in input pixels, person scores (M,), whether NMS is still needed."""
        raise NotImplementedError


class YoloxRaw(_Format):
    name = "YOLOX (raw head)"

    def __init__(self, output: str):
        self.output = output

    def decode(self, outputs, size, person_class):
        pred = outputs[self.output][0]
        grid, strides = anchor_points(size, YOLOX_STRIDES, offset=0.0)
        if len(pred) != len(grid):
            raise DetectorError(f"YOLOX output has {len(pred)} anchor points; strides 8/16/32 at "
                                f"{size[0]}x{size[1]} give {len(grid)}")
        xy = (pred[:, :2] + grid) * strides[:, None]
        wh = np.exp(np.minimum(pred[:, 2:4], 20.0)) * strides[:, None]
        scores = pred[:, 4] * pred[:, 5 + person_class]
        return np.concatenate([xy - wh / 2, xy + wh / 2], axis=1), scores, True


class YoloxEndToEnd(_Format):
    name = "YOLOX (end-to-end, NMS inside)"

    def __init__(self, dets: str, labels: str):
        self.dets, self.labels = dets, labels

    def decode(self, outputs, size, person_class):
        dets = outputs[self.dets].reshape(-1, 5)
        labels = outputs[self.labels].reshape(-1)
        person = labels == person_class
        return dets[person, :4], dets[person, 4], False


class NanoDet(_Format):
    name = "NanoDet"

    def __init__(self, strides: list[int], cls_names: list[str], dis_names: list[str], bins: int):
        self.strides, self.cls_names, self.dis_names, self.bins = strides, cls_names, dis_names, bins

    def preprocess(self, image_bgr, size):
        h, w = image_bgr.shape[:2]
        resized = cv2.resize(image_bgr, (size[1], size[0]), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        x = (resized - np.float32(NANODET_MEAN_BGR)) / np.float32(NANODET_STD_BGR)
        return Preprocessed(to_nchw(x), np.array([size[1] / w, size[0] / h], np.float32), np.zeros(2, np.float32))

    def decode(self, outputs, size, person_class):
        # NanoDet's GFL head places each prior at the cell centre ((x + 0.5) * stride).
        centers, strides = anchor_points(size, self.strides, offset=0.5)
        cls = np.concatenate([outputs[n][0] for n in self.cls_names])
        dis = np.concatenate([outputs[n][0] for n in self.dis_names]).reshape(-1, 4, self.bins)
        if len(cls) != len(centers):
            raise DetectorError(f"NanoDet outputs have {len(cls)} cells; strides {self.strides} at "
                                f"{size[0]}x{size[1]} give {len(centers)}")
        prob = np.exp(dis - dis.max(axis=2, keepdims=True))
        prob /= prob.sum(axis=2, keepdims=True)
        dist = (prob @ np.arange(self.bins, dtype=np.float32)) * strides[:, None]  # left, top, right, bottom
        xy = centers * strides[:, None]
        boxes = np.concatenate([xy - dist[:, :2], xy + dist[:, 2:]], axis=1)
        return boxes, cls[:, person_class], True


class YoloV8(_Format):
    name = "YOLOv8/YOLO11"

    def __init__(self, output: str):
        self.output = output

    def preprocess(self, image_bgr, size):
        canvas, r, offset = letterbox(image_bgr, size, center=True)
        rgb = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        return Preprocessed(to_nchw(rgb), np.array([r, r], np.float32), offset)

    def decode(self, outputs, size, person_class):
        pred = outputs[self.output][0].T  # (N, 4 + C)
        xy, wh = pred[:, :2], pred[:, 2:4]
        return np.concatenate([xy - wh / 2, xy + wh / 2], axis=1), pred[:, 4 + person_class], True


_NANODET = re.compile(r"^(cls|dis)_pred_stride_(\d+)$")


def recognise_format(outputs: list[tuple[str, list]], size: tuple[int, int]) -> _Format | None:
    """The detector format of a graph from its output names and shapes, or None."""
    names = {n: s for n, s in outputs}
    if "dets" in names and "labels" in names:
        return YoloxEndToEnd("dets", "labels")
    matched = {m.groups(): n for n in names if (m := _NANODET.match(n))}
    strides = sorted({int(s) for _, s in matched})
    if strides and all((kind, str(s)) in matched for kind in ("cls", "dis") for s in strides):
        bins_dim = _static_dim(names[matched[("dis", str(strides[0]))]][-1])
        return NanoDet(strides, [matched[("cls", str(s))] for s in strides],
                       [matched[("dis", str(s))] for s in strides], bins=(bins_dim or 32) // 4)
    if len(outputs) == 1 and len(outputs[0][1]) == 3:
        name, shape = outputs[0]
        n_points = num_anchor_points(size)
        d1, d2 = _static_dim(shape[1]), _static_dim(shape[2])
        if d1 == n_points and d2 is not None and d2 > 5:
            return YoloxRaw(name)
        if d2 is not None and d1 is not None and d1 > 4 and d2 > d1:
            return YoloV8(name)
    return None


def _describe(items) -> str:
    return ", ".join(f"{n} {list(s)}" for n, s in items)


class OnnxDetector:
    """A person detector from an ONNX file of one of the formats above.

    ``person_class`` is the class index of "person" (0 in COCO-80); ``score_thr`` and
    ``nms_iou`` set the score cut and OpenCV's NMS; ``input_size`` (H, W) is needed
    only when the file's input size is dynamic.
    """

    def __init__(self, path: str | Path, score_thr: float = 0.3, nms_iou: float = 0.45, person_class: int = 0,
                 threads: int | None = None, input_size: tuple[int, int] | None = None):
        from slimpose.deploy.runtime import make_session

        self.path = Path(path)
        if not self.path.is_file():
            raise DetectorError(f"{self.path}: detector file not found")
        self.score_thr, self.nms_iou, self.person_class = float(score_thr), float(nms_iou), int(person_class)
        try:
            self.session = make_session(self.path, threads=threads)
        except SlimposeError as e:
            reason = str(e).removeprefix(f"{self.path}: ")
            raise DetectorError(f"{self.path}: not a loadable ONNX detector ({reason})") from None
        inputs = [(i.name, i.shape) for i in self.session.get_inputs()]
        outputs = [(o.name, o.shape) for o in self.session.get_outputs()]
        self.input_name = inputs[0][0]
        self.input_size = self._input_size(inputs, input_size)
        self.format = recognise_format(outputs, self.input_size) if len(inputs) == 1 else None
        if self.format is None:
            raise DetectorError(f"{self.path}: not a person detector format slimpose reads (YOLOX raw or "
                                f"end-to-end, NanoDet, YOLOv8/YOLO11); inputs: {_describe(inputs)}; "
                                f"outputs: {_describe(outputs)}")
        self.output_names = [o for o, _ in outputs]

    def _input_size(self, inputs, given) -> tuple[int, int]:
        shape = inputs[0][1]
        if len(shape) != 4:
            raise DetectorError(f"{self.path}: expected one image input (1, 3, H, W); inputs: {_describe(inputs)}")
        h, w = _static_dim(shape[2]), _static_dim(shape[3])
        if h and w:
            return h, w
        if given is None:
            raise DetectorError(f"{self.path}: input size is dynamic ({list(shape)}); give it (e.g. 640x640)")
        return int(given[0]), int(given[1])

    def __call__(self, image_bgr: np.ndarray, image_id=None) -> tuple[np.ndarray, np.ndarray]:
        pre = self.format.preprocess(image_bgr, self.input_size)
        raw = dict(zip(self.output_names, self.session.run(self.output_names, {self.input_name: pre.tensor})))
        boxes, scores, needs_nms = self.format.decode(raw, self.input_size, self.person_class)
        boxes = np.asarray(boxes, np.float32)
        scores = np.asarray(scores, np.float32)
        keep = scores >= self.score_thr
        boxes, scores = boxes[keep], scores[keep]
        if needs_nms:
            kept = nms(boxes, scores, self.score_thr, self.nms_iou)
            boxes, scores = boxes[kept], scores[kept]
        boxes = clip_boxes(pre.to_image(boxes), image_bgr.shape)
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        order = np.argsort(-scores[valid], kind="stable")
        return boxes[valid][order], scores[valid][order]

    def __repr__(self) -> str:
        return (f"OnnxDetector({str(self.path)!r}, format={self.format.name!r}, "
                f"input={self.input_size[0]}x{self.input_size[1]})")


def build_detector(spec: str | None, *, score_thr: float = 0.3, nms_iou: float = 0.45, person_class: int = 0,
                   threads: int | None = None, input_size: tuple[int, int] | None = None):
    """``--detector`` value → detector: None or "whole", "boxes:FILE.json", or an ONNX file."""
    if spec is None or spec == "whole":
        return WholeImageDetector()
    if spec.startswith("boxes:"):
        return BoxesFileDetector(spec[len("boxes:"):])
    return OnnxDetector(spec, score_thr=score_thr, nms_iou=nms_iou, person_class=person_class, threads=threads,
                        input_size=input_size)
