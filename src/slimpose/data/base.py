"""What every data source shares: the :class:`DataSource` base and the file readers.

Every data set (COCO-format JSON — real COCO or the synthetic data —, MPII's HRNet JSON,
LSP/LSPET ``joints.mat``) is read into a :class:`DataSource`: a list of
:class:`~slimpose.data.types.PersonInstance` in image pixels, the count of what was
skipped and why, and an ``evaluate`` that scores predictions with the data set's metric.
The readers of each format (``data.coco``, ``data.mpii``, ``data.lsp``) build on this
module; :func:`slimpose.data.sources.build_source` picks one for a config.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import threading
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


def load_json(path: str | Path, field_name: str = "ann_file"):
    path = Path(path)
    if not str(path) or not path.is_file():
        raise DataError(str(path) or "config", field_name, "file not found")
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(str(path), field_name, f"not valid JSON ({e})") from None


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
_PNG_START = b"\x89PNG\r\n\x1a\n"
# Larger images are refused before decoding: far beyond any photo a pose model sees, and
# decoding one would take gigabytes (OpenCV's own limit, 2^30 pixels, raises cv2.error).
MAX_IMAGE_SIDE = 20000
MAX_IMAGE_PIXELS = 1 << 28
# libjpeg reports damaged data only as a warning on stderr, naming no file, and fills the
# missing part of the picture with grey: these warnings mean pixels were made up.
_JPEG_DAMAGE_WARNINGS = ("premature end", "bad huffman code", "bad arithmetic code", "instead of rst")
_decode_lock = threading.Lock()
_PIPE_CAPACITY = 1 << 16  # Linux's default: all a pipe holds before writes fail


def _jpeg_size(raw: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame segment, None if there is none before the scan."""
    pos = 2
    while pos + 4 <= len(raw):
        if raw[pos] != 0xFF:
            return None
        marker = raw[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan: no frame header came first
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOF0..SOF15
            if pos + 9 > len(raw):
                return None
            height, width = struct.unpack(">HH", raw[pos + 5:pos + 9])
            return width, height
        pos += 2 + struct.unpack(">H", raw[pos + 2:pos + 4])[0]
    return None


def _declared_size(raw: bytes) -> tuple[int, int] | None:
    """(width, height) that a PNG or JPEG header declares; None for other formats."""
    if raw.startswith(_PNG_START) and raw[12:16] == b"IHDR" and len(raw) >= 24:
        width, height = struct.unpack(">II", raw[16:24])
        return width, height
    if raw.startswith(_JPEG_START):
        return _jpeg_size(raw)
    return None


def _decode_jpeg(data: np.ndarray, path: str) -> np.ndarray | None:
    """``cv2.imdecode`` of a JPEG, refusing damaged data: libjpeg's warnings, written to the
    process's stderr (fd 2), are caught there; the harmless ones are passed on with the file name."""
    import cv2

    sys.stderr.flush()
    with _decode_lock:  # fd 2 belongs to the whole process: one redirection at a time
        read_end, write_end = os.pipe()
        for end in (read_end, write_end):  # a flood of messages is cut short; nothing ever waits
            os.set_blocking(end, False)
        saved = os.dup(2)
        os.dup2(write_end, 2)
        try:
            image = cv2.imdecode(data, cv2.IMREAD_COLOR)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(write_end)
        try:
            said = os.read(read_end, _PIPE_CAPACITY)
        except BlockingIOError:  # nothing was written
            said = b""
        finally:
            os.close(read_end)
    warnings = said.decode(errors="replace").splitlines()
    for line in warnings:
        if any(w in line.lower() for w in _JPEG_DAMAGE_WARNINGS):
            raise DataError(path, "image", f"damaged JPEG data ({line.strip()}): part of the picture would be "
                            "made up")
        print(f"{path}: {line}", file=sys.stderr)
    return image


def read_image(path: str | Path) -> np.ndarray:
    """BGR uint8 (H, W, 3) image, or a DataError naming the file.

    Decoding goes through the file's bytes so that OpenCV prints nothing of its own. Refused:
    a header that declares more than ``MAX_IMAGE_SIDE`` / ``MAX_IMAGE_PIXELS``, and a
    truncated or damaged JPEG (which libjpeg decodes with grey rows and only a warning).
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
    if not data.size:
        raise DataError(str(path), "image", "empty file")
    raw = data.tobytes()
    size = _declared_size(raw)
    if size and (max(size) > MAX_IMAGE_SIDE or size[0] * size[1] > MAX_IMAGE_PIXELS):
        raise DataError(str(path), "image", f"declares {size[0]}x{size[1]} pixels; at most {MAX_IMAGE_SIDE} a "
                        f"side and {MAX_IMAGE_PIXELS} in all are read")
    # Cameras may pad a JPEG with zeros after its end-of-image marker.
    if raw.startswith(_JPEG_START) and not raw.rstrip(b"\x00").endswith(_JPEG_END):
        raise DataError(str(path), "image", "truncated JPEG (no end-of-image marker): the file is incomplete")
    try:
        image = _decode_jpeg(data, str(path)) if raw.startswith(_JPEG_START) else cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as e:
        raise DataError(str(path), "image", f"cannot be decoded (OpenCV: {e.err})") from None
    if image is None:
        raise DataError(str(path), "image", "cannot be decoded as an image")
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
