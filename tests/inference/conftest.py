"""The pose model the inference tests run: a small exported TinyPose."""

from __future__ import annotations

from pathlib import Path

import pytest

from infer_testdata import POSE_SIZE


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    """TinyPose (COCO-17) with random weights, exported at 64x48."""
    torch = pytest.importorskip("torch")
    from slimpose.deploy.export import export_onnx
    from slimpose.keypoints import get_layout
    from slimpose.models.registry import build_model

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = build_model("tinypose", num_joints=17, input_size=POSE_SIZE).eval()
        path = tmp_path_factory.mktemp("pose") / "tinypose.onnx"
        export_onnx(model, path, POSE_SIZE, get_layout("coco"))
    finally:
        torch.set_num_threads(threads)
    return path
