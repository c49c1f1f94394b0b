"""Paths of the real data and detectors in ../shared, and small test helpers (a module
with its own name, so that it never collides with another folder's conftest)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
MODELS = SHARED / "models"
YOLOX = MODELS / "yolox_nano_416x416.onnx"
NANODET = MODELS / "nanodet_m_416.onnx"
COCO_VAL = SHARED / "data" / "coco-mini" / "val2017"
COCO_VAL_ANN = SHARED / "data" / "coco-mini" / "annotations" / "person_keypoints_val2017.json"
LSPET = SHARED / "data" / "lspet"
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
       "OMP_NUM_THREADS": "1"}
POSE_SIZE = (64, 48)
INFER = (sys.executable, "-m", "slimpose", "infer")


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


def textured_image(seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (5, 5), 2)


def infer_cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    """``slimpose infer ARGS --threads 1`` in a subprocess (text output captured)."""
    return subprocess.run([*INFER, *map(str, args), "--threads", "1"], capture_output=True, text=True, env=ENV,
                          timeout=timeout)


def write_images(folder: Path, names, h: int = 30, w: int = 40) -> Path:
    """Small textured pictures under ``names`` (the extension picks the format)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        assert cv2.imwrite(str(folder / name), textured_image(i, h, w))
    return folder


def export_tiny_pose(folder: Path) -> Path:
    """TinyPose (COCO-17) with random weights, exported at 64x48 into ``folder``."""
    torch = pytest.importorskip("torch")
    from slimpose.deploy.export import export_onnx
    from slimpose.keypoints import get_layout
    from slimpose.models.registry import build_model

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = build_model("tinypose", num_joints=17, input_size=POSE_SIZE).eval()
        path = folder / "tinypose.onnx"
        export_onnx(model, path, POSE_SIZE, get_layout("coco"))
    finally:
        torch.set_num_threads(threads)
    return path
