"""Data sources: a data set's person instances plus its official evaluation.

Every data set (COCO-format JSON — real COCO or the synthetic data —, MPII's HRNet JSON,
LSP/LSPET ``joints.mat``) is read into a :class:`DataSource`: a list of
:class:`~slimpose.data.types.PersonInstance` in image pixels, the count of what was
skipped and why, and an ``evaluate`` that scores predictions with the data set's metric.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slimpose.data.types import PersonInstance
from slimpose.errors import DataError
from slimpose.keypoints import KeypointLayout


@dataclass
class DataSource:
    name: str
    layout: KeypointLayout
    instances: list[PersonInstance] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    main_metric: str = ""

    def __len__(self) -> int:
        return len(self.instances)

    def evaluate(self, keypoints: np.ndarray, scores: np.ndarray, indices: np.ndarray,
                 out_dir: Path | None = None) -> dict[str, float]:
        """Score predictions (N, K, 2) image pixels, (N, K) scores, for ``instances[indices]``."""
        raise NotImplementedError(f"{type(self).__name__} has no evaluation")

    def truncate(self, limit: int | None) -> None:
        """Keep only the first ``limit`` instances (quick runs)."""
        if limit is not None and limit >= 0 and len(self.instances) > limit:
            self.skipped["limit"] = self.skipped.get("limit", 0) + len(self.instances) - limit
            self.instances = self.instances[:limit]

    def summary(self) -> str:
        skipped = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items()) if v)
        return f"{self.name}: {len(self.instances)} instances" + (f" (skipped {skipped})" if skipped else "")

    # helpers for subclasses -------------------------------------------------------
    def _skip(self, reason: str, n: int = 1) -> None:
        """Count ``n`` things skipped for ``reason`` (nothing is recorded for 0)."""
        if n:
            self.skipped[reason] = self.skipped.get(reason, 0) + n

    def _check_eval_inputs(self, keypoints, scores, indices) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keypoints = np.asarray(keypoints, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64)
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        k = self.layout.num_keypoints
        n = len(indices)
        if n == 0:
            raise ValueError(f"{self.name}: no predictions to evaluate")
        if keypoints.shape != (n, k, 2) or scores.shape != (n, k):
            raise ValueError(f"{self.name}: expected keypoints ({n}, {k}, 2) and scores ({n}, {k}) for {n} "
                             f"indices, got {keypoints.shape} and {scores.shape}")
        if n and (indices.min() < 0 or indices.max() >= len(self.instances)):
            raise ValueError(f"{self.name}: instance indices outside 0..{len(self.instances) - 1}")
        return keypoints, scores, indices


    def write_predictions(self, out_dir: Path | None, keypoints, scores, indices) -> None:
        """``out_dir/predictions.json``: one entry per instance with its image and [x, y, score] per joint."""
        if out_dir is None:
            return
        from slimpose.io import write_json_atomic

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        entries = [{"image": self.instances[i].image_path, "image_id": int(self.instances[i].image_id),
                    "keypoints": np.concatenate([k, s[:, None]], axis=1).round(3).tolist()}
                   for k, s, i in zip(keypoints, scores, indices)]
        write_json_atomic(out_dir / "predictions.json", entries, indent=None)


def non_finite_joints(joints: np.ndarray) -> np.ndarray:
    """Joints (..., K, 3) as x, y, flag that claim a label (flag not 0) but hold NaN or
    infinity, as a (..., K) bool. JSON and .mat readers accept such values; compared with
    them, every distance is NaN (and COCOeval counts a NaN OKS as a match)."""
    joints = np.asarray(joints, dtype=np.float64)
    return (joints[..., 2] != 0) & ~np.isfinite(joints).all(axis=-1)


def read_mat(path: str | Path, field_name: str) -> dict:
    """A MATLAB file's variables, or a DataError naming the file and the config field."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), field_name, "file not found")
    try:
        return scipy.io.loadmat(str(path))
    except Exception as e:  # scipy raises several kinds for a damaged file
        raise DataError(str(path), field_name, f"not a readable .mat file ({e})") from None


_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"


def read_image(path: str | Path) -> np.ndarray:
    """BGR uint8 (H, W, 3) image, or a DataError naming the file.

    Decoding goes through the file's bytes so that OpenCV prints nothing of its own, and
    a truncated JPEG (which libjpeg decodes with grey rows and only a warning) is refused.
    """
    import cv2

    if os.path.isdir(path):
        raise DataError(str(path), "image", "is a folder, not an image file")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(str(path), "image", "image file not found") from None
    except OSError as e:
        raise DataError(str(path), "image", f"cannot be read ({e.strerror or e})") from None
    raw = data.tobytes()
    # Cameras may pad a JPEG with zeros after its end-of-image marker.
    if raw.startswith(_JPEG_START) and not raw.rstrip(b"\x00").endswith(_JPEG_END):
        raise DataError(str(path), "image", "truncated JPEG (no end-of-image marker): the file is incomplete")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise DataError(str(path), "image", "cannot be decoded as an image" if data.size else "empty file")
    return image


def check_images_exist(paths, source: str, field_name: str) -> None:
    """Raise one DataError naming the missing image files (existence only; cheap)."""
    missing = [p for p in dict.fromkeys(paths) if not os.path.isfile(p)]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise DataError(source, field_name, f"{len(missing)} image file(s) not found: "
                        f"{', '.join(missing[:3])}{more}")


def require_instances(src: DataSource, source: str, field_name: str) -> None:
    if not src.instances:
        skipped = ", ".join(f"{k}: {v}" for k, v in sorted(src.skipped.items()) if v) or "nothing"
        raise DataError(source, field_name, f"no usable person instances (skipped {skipped})")


def build_source(ds, layout: KeypointLayout, input_size, train: bool) -> DataSource:
    """Read the data set described by a ``DatasetConfig``; ``input_size`` is (H, W).

    ``ds.type``: ``coco`` (any COCO-format keypoint JSON, also the synthetic data),
    ``mpii`` (HRNet/MMPose JSON) or ``lsp`` (LSP / LSPET ``joints.mat``).
    """
    aspect_ratio = float(input_size[1]) / float(input_size[0])
    kind = (ds.type or "").lower()
    if kind in ("coco", "synthetic"):
        from slimpose.data.coco import CocoSource
        src: DataSource = CocoSource.from_config(ds, layout, aspect_ratio, train)
    elif kind == "mpii":
        from slimpose.data.mpii import MpiiSource
        src = MpiiSource.from_config(ds, layout, aspect_ratio, train)
    elif kind in ("lsp", "lspet"):
        from slimpose.data.lsp import LspSource
        src = LspSource.from_config(ds, layout, aspect_ratio, train)
    else:
        raise DataError(ds.ann_file or "config", "type", f"unknown data set type {ds.type!r}; known: coco, mpii, lsp")
    src.truncate(ds.limit)
    return src
