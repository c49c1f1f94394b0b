"""Evaluation (torch model) and the deploy runtime (ONNX session) share one predict ->
flip -> decode -> image path: the same crops give the same keypoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slimpose.deploy.export import export_onnx
from slimpose.deploy.runtime import OnnxPoseEstimator
from slimpose.engine.evaluate import predict
from slimpose.keypoints import COCO17
from slimpose.models.registry import build_model

SIZE = (64, 48)


@pytest.mark.parametrize("name", ["tinypose", "repnet_a"])
def test_evaluation_and_runtime_agree(tmp_path, name):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = build_model(name, input_size=SIZE).eval()
    est = OnnxPoseEstimator(export_onnx(model, tmp_path / "m.onnx", SIZE, COCO17)["path"], threads=1)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 90, 3), dtype=np.uint8)
    boxes = np.array([[5.0, 10.0, 40.0, 80.0], [30.0, 20.0, 50.0, 90.0]])
    crops, centers, scales = est.preprocess(image, boxes)
    batch = {"image": torch.from_numpy(crops), "center": torch.from_numpy(centers),
             "scale": torch.from_numpy(scales), "rotation": torch.zeros(2), "index": torch.arange(2)}
    kpts, scores, idx = predict(model, [batch], est.codec, COCO17.flip_index, torch.device("cpu"))
    run_kpts, run_scores = est(image, boxes, flip=True)
    assert idx.tolist() == [0, 1] and kpts.shape == run_kpts.shape == (2, 17, 2)
    # ORT and PyTorch differ by float32 rounding only; decoding an argmax can then pick a
    # neighbouring pixel where two are within that rounding, so compare most joints tightly.
    close = np.linalg.norm(kpts - run_kpts, axis=-1) < 1e-2
    assert close.mean() > 0.9, np.linalg.norm(kpts - run_kpts, axis=-1)
    # relative: an untrained tinypose scores ~1e-12, where an absolute 1e-3 would check nothing
    np.testing.assert_allclose(scores[close], run_scores[close], rtol=1e-3, atol=1e-3 * np.abs(run_scores).max())
