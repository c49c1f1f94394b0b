"""Score an exported ONNX model (float or INT8) on a data set's validation split through
the torch-free runtime.

The instances, their crops (each instance's own centre and scale, as the data source
gives them) and the metric are those of ``slimpose eval`` on a checkpoint, so the two
figures compare the runtimes and nothing else: the float export should reproduce the
checkpoint's figure, and an INT8 file shows what quantisation costs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from slimpose.codecs import predict_keypoints
from slimpose.data.base import DataSource, read_image
from slimpose.data.sources import build_source
from slimpose.deploy.runtime import OnnxPoseEstimator, model_input
from slimpose.errors import ConfigError
from slimpose.keypoints import KeypointLayout, get_layout


def predict_instances(estimator: OnnxPoseEstimator, source: DataSource, flip: bool = True
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (N, K, 2) in image pixels and scores (N, K) of each of ``source``'s
    instances, cropped at its own centre and scale; ``flip``: the flip test."""
    meta = estimator.metadata
    flip_index = estimator.layout.flip_index if flip else None
    keypoints, scores = [], []
    image_path, image = None, None
    for inst in source.instances:
        if inst.image_path != image_path:  # COCO lists the people of an image together
            image_path, image = inst.image_path, read_image(inst.image_path)
        x = model_input(image, inst.center[None], inst.scale[None], meta)
        kpts, kpt_scores = predict_keypoints(estimator.forward, x, estimator.codec, inst.center[None], inst.scale[None],
                                             flip_index)
        keypoints.append(kpts[0])
        scores.append(kpt_scores[0])
    k = estimator.layout.num_keypoints
    if not keypoints:
        return np.zeros((0, k, 2)), np.zeros((0, k))
    return np.stack(keypoints), np.stack(scores)


def checked_estimator(onnx_path: str | Path, layout: str | KeypointLayout | None,
                      threads: int | None = None) -> tuple[OnnxPoseEstimator, KeypointLayout]:
    """The runtime of the ONNX model at ``onnx_path`` and the data's layout ``layout`` (a
    registered name or a layout; None: the file's own), which must be the file's (compared
    by name and joint names)."""
    estimator = OnnxPoseEstimator(onnx_path, threads=threads)
    wanted = estimator.layout if layout is None else get_layout(layout) if isinstance(layout, str) else layout
    have = estimator.layout
    if have.name != wanted.name or have.names != wanted.names:
        raise ConfigError(f"{onnx_path}: a {have.name!r} model ({have.num_keypoints} keypoints) cannot be scored on "
                          f"{wanted.name!r} data ({wanted.num_keypoints} keypoints)")
    return estimator, wanted


def evaluate_onnx(onnx_path: str | Path, val_dataset, layout: str | KeypointLayout | None, *, flip: bool = True,
                  threads: int | None = None, out_dir: str | Path | None = None) -> dict[str, float]:
    """Metrics of the ONNX model at ``onnx_path`` on ``val_dataset`` (a ``DatasetConfig``).

    The file's keypoint layout must be ``layout`` (the data set's: a registered name or a
    layout, compared by name and joint names); None: the file's own. ``flip``: the flip
    test. ``out_dir`` receives the data set's prediction files, as for a checkpoint.
    """
    start = time.perf_counter()
    estimator, layout = checked_estimator(onnx_path, layout, threads)
    source = build_source(val_dataset, layout, estimator.input_size, train=False)
    keypoints, scores = predict_instances(estimator, source, flip)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    metrics = source.evaluate(keypoints, scores, np.arange(len(keypoints)),
                              out_dir=Path(out_dir) if out_dir is not None else None)
    metrics = {k: float(v) for k, v in metrics.items()}
    metrics["eval_seconds"] = round(time.perf_counter() - start, 2)
    return metrics
