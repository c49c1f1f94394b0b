"""The one predict -> flip test -> decode -> image coordinates path.

Evaluation (a torch model wrapped as a numpy forward) and the torch-free ONNX runtime
(an onnxruntime session) both run crops through :func:`predict_keypoints`, so the flip
test and the decoding cannot drift apart between what is measured and what is deployed.
Numpy-only (no torch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from slimpose.codecs.base import KeypointCodec
from slimpose.geometry import crop_to_image

Forward = Callable[[np.ndarray], np.ndarray]


def predict_outputs(forward: Forward, crops: np.ndarray, codec: KeypointCodec,
                    flip_index: Sequence[int] | None = None) -> np.ndarray:
    """Raw outputs for normalised crops (N, 3, H, W); with ``flip_index`` the flip test:
    the mirrored crops' outputs are brought back by ``codec.flip`` and averaged in."""
    out = forward(crops)
    if flip_index is None:
        return out
    flipped = forward(np.ascontiguousarray(crops[..., ::-1]))
    return 0.5 * (out + codec.flip(flipped, flip_index))


def predict_keypoints(
    forward: Forward,
    crops: np.ndarray,
    codec: KeypointCodec,
    centers: np.ndarray,
    scales: np.ndarray,
    flip_index: Sequence[int] | None = None,
    rotations: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (N, K, 2) float32 in image pixels and scores (N, K) float32.

    ``centers``/``scales`` (N, 2) and ``rotations`` (N,) degrees describe how each crop
    was cut from its image (:func:`slimpose.geometry.get_affine_transform`).
    """
    outputs = predict_outputs(forward, crops, codec, flip_index)
    keypoints, scores = codec.decode(outputs)
    keypoints = crop_to_image(keypoints, centers, scales, codec.input_size, rotations)
    return keypoints.astype(np.float32), np.asarray(scores, dtype=np.float32)
