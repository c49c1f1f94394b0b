"""Torch-free pose inference with an exported ONNX model.

Only numpy, OpenCV, onnxruntime and torch-free slimpose modules (keypoints, codecs,
data.transforms, data.base) are imported: this is what a CPU or edge user deploys.

    est = OnnxPoseEstimator("lpn_50.onnx", threads=2)     # or a shipped weight name
    keypoints, scores = est(image_bgr, boxes_xyxy=boxes)   # (N, K, 2) image px, (N, K)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import onnxruntime as ort

from slimpose import __version__
from slimpose.codecs import KeypointCodec, MetadataFieldError, codec_from_metadata, predict_keypoints, predict_outputs
from slimpose.codecs.base import read_bool, read_choice, read_number, read_numbers, read_size, read_text
from slimpose.data.base import read_image
from slimpose.data.transforms import BOX_PADDING, box_to_center_scale, normalize_crop
from slimpose.errors import SlimposeError
from slimpose.geometry import get_affine_transform
from slimpose.keypoints import KeypointLayout

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# A file's metadata is untrusted input. Its values are small JSON (the layout's skeleton,
# the deepest, nests 3 levels); a value nested thousands of levels deep would exhaust
# Python's stack in json or in the checks that read it.
MAX_METADATA_DEPTH = 32
# Pose crops are a few hundred pixels a side; the runtime allocates (N, 3, H, W) float32
# inputs at the declared size, so a hostile 16000x12000 would take gigabytes per person.
MAX_INPUT_SIDE = 4096


class RuntimeModelError(SlimposeError):
    """An ONNX file that is not a slimpose export, carries invalid metadata, or cannot be run."""


def _field_error(source, field: str, problem: str) -> RuntimeModelError:
    return RuntimeModelError(f"{source}: metadata field {field!r}: {problem}")


def _nesting_depth(value) -> int:
    """How deeply lists and objects nest in a JSON value (0 for a scalar); iterative, as
    the value may nest deeper than the stack allows recursion."""
    deepest, pending = 0, [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth + 1)
            pending.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _decode_json_value(text: str, source, key: str):
    too_deep = f"nested more than {MAX_METADATA_DEPTH} levels deep"
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        raise _field_error(source, key, f"not a JSON value ({text[:40]!r})") from None
    except RecursionError:  # deeper than the stack: json gives up before the check below
        raise _field_error(source, key, too_deep) from None
    if _nesting_depth(value) > MAX_METADATA_DEPTH:
        raise _field_error(source, key, too_deep)
    return value


def _decode_json_props(props: dict[str, str], source) -> dict:
    return {key: _decode_json_value(text, source, key) for key, text in props.items()}


def _read_layout(fields: dict) -> KeypointLayout:
    if "layout" not in fields:
        raise MetadataFieldError("layout", "missing")
    try:
        layout = KeypointLayout.from_dict(fields["layout"])
        layout.sigmas_array()  # numbers, not strings: OKS reads them
        layout.flip_index  # noqa: B018 - integer pairs
    except KeyError as e:
        raise MetadataFieldError("layout", f"lacks {e.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise MetadataFieldError("layout", f"not a keypoint layout ({e})") from None
    return layout


def _read_flip_index(fields: dict, num_keypoints: int) -> tuple[int, ...]:
    value = fields.get("flip_index")
    if not (isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            and sorted(value) == list(range(num_keypoints))):
        raise MetadataFieldError("flip_index", "missing" if "flip_index" not in fields else
                                 f"expected a permutation of 0..{num_keypoints - 1}, got {str(value)[:60]}")
    return tuple(value)


def _read_optional_dict(fields: dict, name: str) -> dict | None:
    value = fields.get(name)
    if value is not None and not isinstance(value, dict):
        raise MetadataFieldError(name, f"expected an object, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class PoseModelMetadata:
    """What an exported pose model says about itself (ONNX ``metadata_props``, JSON values).

    Built by the exporter and written with :meth:`to_props`; read back and validated by
    :meth:`from_props`, which is the only way the runtime sees a file's metadata.
    ``weights`` names the weights the export came from (file name and SHA-256, never a
    local path); ``extra`` holds fields other tools added (e.g. ``quantization``).
    """

    model_name: str
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    color_order: str
    box_padding: float
    layout: KeypointLayout
    flip_index: tuple[int, ...]
    codec: KeypointCodec
    output_shape: tuple[int, ...]
    dynamic_batch: bool = False
    weights: dict | None = None
    model_kwargs: dict = field(default_factory=dict)
    slimpose_version: str = __version__
    extra: dict = field(default_factory=dict)

    INPUT_LAYOUT: ClassVar[str] = "NCHW"
    PIXEL_RANGE: ClassVar[str] = "0-255"
    COLOR_ORDERS: ClassVar[tuple[str, ...]] = ("RGB", "BGR")

    @property
    def output_kind(self) -> str:
        return self.codec.output_kind

    @property
    def num_keypoints(self) -> int:
        return self.layout.num_keypoints

    def to_fields(self) -> dict:
        """Plain JSON-able fields (the codec's fields inline, as older files have them)."""
        return {
            "slimpose_version": self.slimpose_version,
            "model_name": self.model_name,
            "input_size": list(self.input_size),
            "input_layout": self.INPUT_LAYOUT,
            "color_order": self.color_order,
            "pixel_range": self.PIXEL_RANGE,
            "mean": list(self.mean),
            "std": list(self.std),
            "box_padding": self.box_padding,
            "layout": self.layout.to_dict(),
            "num_keypoints": self.num_keypoints,
            "flip_index": list(self.flip_index),
            "output_shape": list(self.output_shape),
            "dynamic_batch": self.dynamic_batch,
            "weights": self.weights,
            "model_kwargs": self.model_kwargs,
            **self.codec.export_metadata(),
            **self.extra,
        }

    def to_props(self) -> dict[str, str]:
        """``metadata_props`` for an ONNX file: every value a JSON string."""
        return {key: json.dumps(value) for key, value in self.to_fields().items()}

    @classmethod
    def from_props(cls, props: dict[str, str], source, input_shape=None, output_shape=None,
                   decode: str | None = None) -> PoseModelMetadata:
        """Parse and validate ``metadata_props``; ``input_shape``/``output_shape`` are the
        graph's (ints, or strings/None for dynamic dimensions) and must agree with it.
        ``decode`` overrides the stored heatmap decoding. Any problem is a
        :class:`RuntimeModelError` naming ``source`` and the field."""
        fields = _decode_json_props(props, source)
        if "slimpose_version" not in fields:
            raise RuntimeModelError(f"{source}: not a slimpose export (metadata field 'slimpose_version' missing); "
                                    f"export it with 'slimpose export'")
        try:
            meta = cls._from_fields(fields, decode)
        except MetadataFieldError as e:
            raise _field_error(source, e.field, e.problem) from None
        meta._check_graph(source, input_shape, output_shape)
        return meta

    @classmethod
    def _from_fields(cls, fields: dict, decode: str | None) -> PoseModelMetadata:
        input_size = read_size(fields, "input_size")
        if max(input_size) > MAX_INPUT_SIDE:
            raise MetadataFieldError("input_size", f"{list(input_size)} exceeds {MAX_INPUT_SIDE} pixels a side "
                                                   f"(pose crops are a few hundred)")
        read_choice(fields, "input_layout", (cls.INPUT_LAYOUT,))
        read_choice(fields, "pixel_range", (cls.PIXEL_RANGE,))
        layout = _read_layout(fields)
        if fields.get("num_keypoints", layout.num_keypoints) != layout.num_keypoints:
            raise MetadataFieldError("num_keypoints", f"{fields['num_keypoints']!r} but the layout has "
                                                      f"{layout.num_keypoints} keypoints")
        codec = codec_from_metadata(input_size, fields, decode)
        output_shape = fields.get("output_shape")
        if not isinstance(output_shape, list):
            raise MetadataFieldError("output_shape", "missing" if output_shape is None else
                                     f"expected a list of sizes, got {str(output_shape)[:60]}")
        problem = codec.output_shape_problem([1, *output_shape], layout.num_keypoints)
        if problem:
            raise MetadataFieldError("output_shape", problem)
        known = {f.name for f in dataclasses.fields(cls)} | {"input_layout", "pixel_range", "num_keypoints"} | set(
            codec.export_metadata())
        return cls(
            model_name=read_text(fields, "model_name"),
            input_size=input_size,
            mean=read_numbers(fields, "mean", 3),
            std=read_numbers(fields, "std", 3, positive=True),
            color_order=read_choice(fields, "color_order", cls.COLOR_ORDERS),
            box_padding=read_number(fields, "box_padding", positive=True),
            layout=layout,
            flip_index=_read_flip_index(fields, layout.num_keypoints),
            codec=codec,
            output_shape=tuple(output_shape),
            dynamic_batch=read_bool(fields, "dynamic_batch"),
            weights=_read_optional_dict(fields, "weights"),
            model_kwargs=_read_optional_dict(fields, "model_kwargs") or {},
            slimpose_version=read_text(fields, "slimpose_version"),
            extra={k: v for k, v in fields.items() if k not in known},
        )

    def _check_graph(self, source, input_shape, output_shape) -> None:
        if input_shape is not None:
            h, w = self.input_size
            if len(input_shape) != 4 or any(isinstance(d, int) and d != want
                                            for d, want in zip(input_shape[1:], (3, h, w))):
                raise _field_error(source, "input_size", f"[{h}, {w}] does not match the graph's input shape "
                                                         f"{list(input_shape)} (expected [N, 3, {h}, {w}])")
        if output_shape is not None and all(isinstance(d, int) for d in output_shape[1:]):
            if list(output_shape[1:]) != list(self.output_shape):
                raise _field_error(source, "output_shape", f"{list(self.output_shape)} does not match the graph's "
                                                           f"output shape {list(output_shape)}")


def read_onnx_metadata(onnx_path: str | Path) -> PoseModelMetadata:
    """The validated slimpose metadata of an ONNX file (torch-free)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return _metadata_of(_open_session(onnx_path, opts), onnx_path)


def _metadata_of(session: ort.InferenceSession, source, decode: str | None = None) -> PoseModelMetadata:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) < 1:
        raise RuntimeModelError(f"{source}: expected a graph with one input and an output, got "
                                f"{len(inputs)} inputs and {len(outputs)} outputs")
    return PoseModelMetadata.from_props(session.get_modelmeta().custom_metadata_map, source,
                                        input_shape=inputs[0].shape, output_shape=outputs[0].shape, decode=decode)


def warp_crops(image_bgr: np.ndarray, centers: np.ndarray, scales: np.ndarray,
               input_size: tuple[int, int]) -> np.ndarray:
    """Affine crops (N, H, W, 3) uint8 of the boxes given by centre/scale (image px)."""
    h, w = int(input_size[0]), int(input_size[1])
    out = np.empty((len(centers), h, w, 3), dtype=np.uint8)
    for i, (c, s) in enumerate(zip(centers, scales)):
        m = get_affine_transform(c, s, 0.0, (w, h))
        out[i] = cv2.warpAffine(image_bgr, m, (w, h), flags=cv2.INTER_LINEAR)
    return out


def model_input(image_bgr: np.ndarray, centers: np.ndarray, scales: np.ndarray,
                meta: PoseModelMetadata) -> np.ndarray:
    """The network input (N, 3, H, W) float32 for the crops at ``centers``/``scales``
    (image px): warped to the model's input size and normalised as its metadata says."""
    crops = warp_crops(image_bgr, centers, scales, meta.input_size)
    return normalize_crop(crops, meta.mean, meta.std, to_rgb=meta.color_order == "RGB")


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


def crops_from_images(paths, input_size: tuple[int, int], mean: Sequence[float], std: Sequence[float],
                      boxes=None, padding: float = BOX_PADDING, to_rgb: bool = True) -> np.ndarray:
    """Normalised network inputs (M, 3, H, W) float32 from image files.

    ``mean``/``std`` are the model's (its registry ``ModelInfo`` or file metadata).
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
        crops.append(normalize_crop(warp_crops(image, centers, scales, (h, w)), mean, std, to_rgb))
    if not crops:
        return np.zeros((0, 3, h, w), dtype=np.float32)
    return np.concatenate(crops)


def _open_session(onnx_path: str | Path, opts: ort.SessionOptions, providers=None) -> ort.InferenceSession:
    path = Path(onnx_path)
    if not path.is_file():
        raise RuntimeModelError(f"{path}: ONNX model not found")
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=list(providers or ["CPUExecutionProvider"]))
    except Exception as e:  # onnxruntime raises its own types for unreadable or invalid graphs
        detail = " ".join(str(e).split())  # one line: ORT messages carry newlines
        raise RuntimeModelError(f"{path}: cannot be loaded by onnxruntime ({type(e).__name__}: {detail})") from None


def make_session(onnx_path: str | Path, providers=None, threads: int | None = None,
                 spin: bool = True, profile_prefix: str | None = None) -> ort.InferenceSession:
    """A CPU (or given providers) session; ``spin=False`` makes idle intra-op threads
    sleep instead of spin-waiting (better on a machine shared with other processes).
    ``profile_prefix``: ORT writes a per-node timing trace there (``end_profiling()``)."""
    opts = ort.SessionOptions()
    if profile_prefix:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return _open_session(onnx_path, opts, providers)


class OnnxPoseEstimator:
    """Top-down pose estimation with a slimpose ONNX export; numpy + OpenCV + onnxruntime.

    ``onnx_path``: an exported ONNX file, or a shipped weight's name (``slimpose weights``
    lists them; checked against its manifest's sha256 first, as :meth:`from_pretrained`).

    ``__call__(image_bgr, boxes_xyxy=..., flip=False)`` → keypoints (N, K, 2) in image
    pixels and scores (N, K). Person boxes (N, 4) are given by keyword, in either form:
    ``boxes_xyxy=`` (corners x1, y1, x2, y2: what the detectors and ``Person.box`` give;
    the primary convention) or ``boxes_xywh=`` (x, y, width, height: COCO's ``bbox``).
    Neither = the whole image is one box. A positional second argument is read as
    ``boxes_xywh``, as before ``boxes_xyxy`` existed, so older code keeps its meaning;
    new code names the form.
    ``decode`` overrides the heatmap decoding stored in the file (one of
    :data:`slimpose.codecs.DECODE_METHODS`; coordinate models have none). ``metadata`` is the file's validated
    :class:`PoseModelMetadata`.
    """

    def __init__(self, onnx_path: str | Path, providers=None, threads: int | None = None,
                 decode: str | None = None):
        self.path = Path(onnx_path)
        if not self.path.is_file() and not self.path.suffix and len(self.path.parts) == 1:
            from slimpose.weights import resolve_model_file  # a shipped weight's name

            self.path = resolve_model_file(onnx_path)
        self.session = make_session(self.path, providers, threads)
        self.metadata = _metadata_of(self.session, self.path, decode)
        self.codec = self.metadata.codec
        self.layout = self.metadata.layout
        self.input_size = self.metadata.input_size
        self.output_kind = self.metadata.output_kind
        self.model_name = self.metadata.model_name
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.output_name = self.session.get_outputs()[0].name
        batch_dim = inp.shape[0]
        self.static_batch = int(batch_dim) if isinstance(batch_dim, int) else None

    @classmethod
    def from_pretrained(cls, name: str, **kwargs) -> "OnnxPoseEstimator":
        """A weight shipped inside the package, by name (``slimpose weights`` lists them),
        checked against its manifest's sha256 first."""
        from slimpose.weights import get_weight

        weight = get_weight(name)
        weight.verify()
        return cls(weight.path, **kwargs)

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
        m = self.metadata
        centers, scales = box_to_center_scale(boxes, w / h, m.box_padding)
        return model_input(image, centers, scales, m), centers, scales

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

    def _flip_index(self, flip: bool) -> tuple[int, ...] | None:
        return self.metadata.flip_index if flip else None

    def predict_crops(self, x: np.ndarray, flip: bool = False) -> np.ndarray:
        """Raw network outputs for normalised crops, flip-test averaged if asked."""
        return predict_outputs(self.forward, x, self.codec, self._flip_index(flip))

    def decode(self, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs → keypoints (N, K, 2) in input-crop pixels, scores (N, K)."""
        return self.codec.decode(outputs)

    def __call__(self, image_bgr: np.ndarray, boxes_xywh=None, flip: bool = False, *,
                 boxes_xyxy=None) -> tuple[np.ndarray, np.ndarray]:
        k = self.layout.num_keypoints
        if boxes_xyxy is not None:
            if boxes_xywh is not None:
                raise ValueError("give boxes_xyxy or boxes_xywh, not both")
            corners = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
            boxes_xywh = np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1)
        if boxes_xywh is not None and np.asarray(boxes_xywh).size == 0:
            return np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
        x, centers, scales = self.preprocess(image_bgr, boxes_xywh)
        return predict_keypoints(self.forward, x, self.codec, centers, scales, self._flip_index(flip))
