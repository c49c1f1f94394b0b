"""The pose model the inference tests run: a small exported TinyPose."""

from __future__ import annotations

from pathlib import Path

import pytest

from infer_testdata import export_tiny_pose


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    """TinyPose (COCO-17) with random weights, exported at 64x48."""
    return export_tiny_pose(tmp_path_factory.mktemp("pose"))
