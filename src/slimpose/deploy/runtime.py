"""Torch-free pose inference with an exported ONNX model.

Only numpy, OpenCV, onnxruntime and torch-free slimpose modules (keypoints, codecs,
data.transforms, data.sources) are imported: this is what a CPU or edge user deploys.

    est = OnnxPoseEstimator("lpn_50.onnx", threads=2)
    keypoints, scores = est(image_bgr, boxes_xywh)   # (N, K, 2) image px, (N, K)
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from slimpose.codecs import build_codec
from slimpose.data.sources import read_image
from slimpose.data.transforms import box_to_center_scale, crop_to_image, get_affine_transform, normalize_crop
from slimpose.errors import SlimposeError
from slimpose.keypoints import KeypointLayout

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class RuntimeModelError(SlimposeError):
    """An ONNX file that is not a slimpose export or cannot be run."""


def read_onnx_metadata(onnx_path: str | Path) -> dict:
    """The slimpose ``metadata_props`` of an ONNX file, JSON-decoded (torch- and onnx-free)."""
    path = Path(onnx_path)
    if not path.is_file():
        raise RuntimeModelError(f"{path}: ONNX model not found")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise RuntimeModelError(f"{path}: cannot be loaded by onnxruntime ({type(e).__name__}: {e})") from None
    return _decode_metadata(session.get_modelmeta().custom_metadata_map, path)


def _decode_metadata(raw: dict, path) -> dict:
    meta = {}
    for key, value in raw.items():
        try:
            meta[key] = json.loads(value)
        except (TypeError, ValueError):
            meta[key] = value
    missing = [k for k in ("output_kind", "input_size", "layout", "mean", "std") if k not in meta]
    if missing:
        raise RuntimeModelError(f"{path}: not a slimpose export (metadata lacks {', '.join(missing)}); "
                                f"export it with 'slimpose export'")
    return meta


def warp_crops(image_bgr: np.ndarray, centers: np.ndarray, scales: np.ndarray,
               input_size: tuple[int, int]) -> np.ndarray:
    """Affine crops (N, H, W, 3) uint8 of the boxes given by centre/scale (image px)."""
    h, w = int(input_size[0]), int(input_size[1])
    out = np.empty((len(centers), h, w, 3), dtype=np.uint8)
    for i, (c, s) in enumerate(zip(centers, scales)):
        m = get_affine_transform(c, s, 0.0, (w, h))
        out[i] = cv2.warpAffine(image_bgr, m, (w, h), flags=cv2.INTER_LINEAR)
    return out


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise SlimposeError(f"{folder}: not a directory")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise SlimposeError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def whole_image_box(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return np.array([[0.0, 0.0, float(w), float(h)]])


def crops_from_images(paths, input_size: tuple[int, int], boxes=None, padding: float = 1.25,
                      mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375)) -> np.ndarray:
    """Normalised network inputs (M, 3, H, W) float32 from image files.

    ``boxes``: None (the whole image is the box, one crop per image) or a list with one
    (n_i, 4) xywh array per image.
    """
    h, w = int(input_size[0]), int(input_size[1])
    crops = []
    for i, path in enumerate(paths):
        image = read_image(path)
        b = whole_image_box(image) if boxes is None else np.asarray(boxes[i], dtype=np.float64).reshape(-1, 4)
        if not len(b):
            continue
        centers, scales = box_to_center_scale(b, w / h, padding)
        crops.append(normalize_crop(warp_crops(image, centers, scales, (h, w)), mean, std))
    if not crops:
        return np.zeros((0, 3, h, w), dtype=np.float32)
    return np.concatenate(crops)


def make_session(onnx_path: str | Path, providers=None, threads: int | None = None,
                 spin: bool = True) -> ort.InferenceSession:
    """A CPU (or given providers) session; ``spin=False`` makes idle intra-op threads
    sleep instead of spin-waiting (better on a machine shared with other processes)."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(onnx_path), opts, providers=list(providers or ["CPUExecutionProvider"]))
    except Exception as e:
        raise RuntimeModelError(f"{onnx_path}: cannot be loaded by onnxruntime ({type(e).__name__}: {e})") from None


class OnnxPoseEstimator:
    """Top-down pose estimation with a slimpose ONNX export; numpy + OpenCV + onnxruntime.

    ``__call__(image_bgr, boxes_xywh=None, flip=False)`` → keypoints (N, K, 2) in image
    pixels and scores (N, K). ``boxes_xywh`` (N, 4); None = the whole image is one box.
    ``decode`` overrides the heatmap decoding stored in the file ("argmax", "dark",
    "softargmax").
    """

    def __init__(self, onnx_path: str | Path, providers=None, threads: int | None = None,
                 decode: str | None = None):
        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise RuntimeModelError(f"{self.path}: ONNX model not found")
        self.session = make_session(self.path, providers, threads)
        self.metadata = _decode_metadata(self.session.get_modelmeta().custom_metadata_map, self.path)
        m = self.metadata
        self.layout = KeypointLayout.from_dict(m["layout"])
        self.input_size = (int(m["input_size"][0]), int(m["input_size"][1]))
        self.output_kind = m["output_kind"]
        self.mean, self.std = m["mean"], m["std"]
        self.color_order = m.get("color_order", "RGB")
        self.padding = float(m.get("box_padding", 1.25))
        self.flip_index = list(m.get("flip_index") or self.layout.flip_index)
        self.flip_shift = bool(m.get("flip_shift", True))
        self.model_name = m.get("model_name", self.path.stem)
        if self.output_kind == "heatmap":
            self.codec = build_codec("heatmap", self.input_size, sigma=float(m.get("sigma", 2.0)),
                                     decode=decode or m.get("decode", "argmax"), beta=float(m.get("beta", 160.0)),
                                     heatmap_size=tuple(m["heatmap_size"]) if "heatmap_size" in m else None)
        else:
            self.codec = build_codec(self.output_kind, self.input_size)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.output_name = self.session.get_outputs()[0].name
        batch_dim = inp.shape[0]
        self.static_batch = int(batch_dim) if isinstance(batch_dim, int) else None

    def __repr__(self) -> str:
        return (f"OnnxPoseEstimator({str(self.path)!r}, model={self.model_name!r}, kind={self.output_kind!r}, "
                f"input={self.input_size[0]}x{self.input_size[1]}, keypoints={self.layout.num_keypoints})")

    # ------------------------------------------------------------------ steps
    def preprocess(self, image_bgr: np.ndarray, boxes_xywh=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """→ network input (N, 3, H, W) float32, centres (N, 2), scales (N, 2)."""
        image = np.asarray(image_bgr)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.ndim == 3 and image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) BGR image, got shape {np.shape(image_bgr)}")
        if image.dtype != np.uint8:
            image = np.clip(image, 0, 255).astype(np.uint8)
        boxes = whole_image_box(image) if boxes_xywh is None else np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
        h, w = self.input_size
        centers, scales = box_to_center_scale(boxes, w / h, self.padding)
        crops = warp_crops(image, centers, scales, self.input_size)
        return normalize_crop(crops, self.mean, self.std, to_rgb=self.color_order.upper() == "RGB"), centers, scales

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Run the network on (N, 3, H, W), in chunks of the model's static batch if it has one."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        b = self.static_batch
        if b is None:
            return self.session.run([self.output_name], {self.input_name: x})[0]
        outs = []
        for i in range(0, len(x), b):
            chunk = x[i:i + b]
            n = len(chunk)
            if n < b:
                chunk = np.concatenate([chunk, np.zeros((b - n, *chunk.shape[1:]), np.float32)])
            outs.append(self.session.run([self.output_name], {self.input_name: chunk})[0][:n])
        return np.concatenate(outs)

    def predict_crops(self, x: np.ndarray, flip: bool = False) -> np.ndarray:
        """Raw network outputs for normalised crops, flip-test averaged if asked."""
        if not flip:
            return self.forward(x)
        n = len(x)
        both = self.forward(np.concatenate([x, x[..., ::-1]]))
        out, flipped = both[:n], both[n:]
        if self.output_kind == "heatmap":
            flipped = self.codec.flip(flipped, self.flip_index, shift=self.flip_shift)
        else:
            flipped = self.codec.flip(flipped, self.flip_index)
        return 0.5 * (out + flipped)

    def decode(self, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs → keypoints (N, K, 2) in input-crop pixels, scores (N, K)."""
        return self.codec.decode(outputs)

    def __call__(self, image_bgr: np.ndarray, boxes_xywh=None, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
        k = self.layout.num_keypoints
        if boxes_xywh is not None and np.asarray(boxes_xywh).size == 0:
            return np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
        x, centers, scales = self.preprocess(image_bgr, boxes_xywh)
        outputs = self.predict_crops(x, flip)
        kpts, scores = self.decode(outputs)
        kpts = crop_to_image(kpts, centers, scales, self.input_size)
        return kpts.astype(np.float32), np.asarray(scores, dtype=np.float32)
