"""Coordinate (regression / RLE) codec: normalised targets, keypoints from (mu, sigma).

Convention: a keypoint at input-crop pixel ``(px, py)`` (pixel-index convention, as
OpenCV's warp and flip use) is normalised to ``(px / W, py / H)``, the MMPose
``RegressionLabel`` rule; decoding multiplies back. Mirroring a W-wide crop
(``cv2.flip``) sends pixel ``p`` to ``W - 1 - p``, i.e. ``x -> 1 - x - 1/W`` in normalised
units (MMPose's ``flip_coordinates(shift_coords=True)``). That map is an involution, so
flipping twice is the identity and a prediction made on a mirrored crop lands exactly on
the original joint. ``flip_coordinates`` needs the crop width for the ``1/W`` term; without
it (``input_width=None``) it mirrors as ``1 - x``, which is off by one input pixel, so pass
the width or use :meth:`CoordinateCodec.flip`. This module is numpy-only (no torch).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from slimpose.codecs.base import KeypointCodec


def flip_coordinates(
    outputs: np.ndarray,
    flip_index: Sequence[int],
    input_width: int | None = None,
) -> np.ndarray:
    """Bring a prediction made on a mirrored crop back to the original crop.

    ``outputs`` is (N, K, C >= 2) with normalised x in channel 0; x becomes
    ``1 - x - 1/input_width`` (``1 - x`` when ``input_width`` is None), joints are swapped
    by ``flip_index``. Other channels (y, sigmas, scores) are swapped with their joints,
    not mirrored.
    """
    out = np.asarray(outputs)
    out = out.astype(out.dtype if out.dtype.kind == "f" else np.float64, copy=True)
    if out.ndim != 3 or out.shape[2] < 2:
        raise ValueError(f"outputs must be (N, K, C>=2), got shape {out.shape}")
    index = list(flip_index)
    if len(index) != out.shape[1]:
        raise ValueError(f"flip_index has {len(index)} entries for {out.shape[1]} keypoints")
    out = out[:, index]
    out[..., 0] = 1.0 - out[..., 0]
    if input_width is not None:
        out[..., 0] -= 1.0 / float(input_width)
    return out


class CoordinateCodec(KeypointCodec):
    """Normalised keypoint targets for regression heads (RLE) and their decoding.

    ``input_size`` is (H, W).
    """

    output_kind = "coordinate"
    instance_ndim = 2
    # What the exported output holds, for readers of the file.
    OUTPUT_FORMAT = "x/W, y/H, sigma_x, sigma_y (sigmoid-ed)"

    def __init__(self, input_size: tuple[int, int] = (256, 192)) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        if min(self.input_size) <= 0:
            raise ValueError(f"bad input size {self.input_size}")

    @classmethod
    def from_options(cls, input_size, sigma, decode, beta, **options) -> CoordinateCodec:
        if options:
            raise TypeError(f"CoordinateCodec takes no options {sorted(options)}")
        return cls(input_size=input_size)

    @classmethod
    def from_fields(cls, input_size, fields: dict, decode: str | None = None) -> CoordinateCodec:
        """``decode`` names a heatmap decoding and does not apply to coordinates."""
        return cls(input_size=input_size)

    def __repr__(self) -> str:
        return f"CoordinateCodec(input_size={self.input_size})"

    def export_metadata(self) -> dict:
        return {"output_kind": self.output_kind, "coordinate_format": self.OUTPUT_FORMAT}

    def output_shape_problem(self, shape, num_keypoints: int) -> str | None:
        if len(shape) != 3 or shape[1] != num_keypoints or not (shape[2] == 2 or shape[2] >= 4):
            return f"expected coordinates (N, {num_keypoints}, 4) or (N, {num_keypoints}, 2), got {tuple(shape)}"
        return None

    def encode(self, keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, 2) input-crop px -> (normalised (K, 2) float32, weights (K,) float32).

        The weight is 0 for an unlabeled joint and for one outside the crop
        (``0 <= x < W`` and ``0 <= y < H`` required).
        """
        h, w = self.input_size
        kpts = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
        vis = np.asarray(visible, dtype=np.float64).reshape(-1)
        if vis.shape[0] != kpts.shape[0]:
            raise ValueError(f"{kpts.shape[0]} keypoints but {vis.shape[0]} visibility values")
        finite = np.isfinite(kpts).all(axis=1)
        safe = np.where(finite[:, None], kpts, 0.0)
        inside = (safe[:, 0] >= 0) & (safe[:, 0] < w) & (safe[:, 1] >= 0) & (safe[:, 1] < h)
        weight = ((vis > 0) & finite & inside).astype(np.float32)
        target = (safe / np.array([w, h], dtype=np.float64)).astype(np.float32)
        return target, weight

    def decode_batch(self, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, K, 4) [x_norm, y_norm, sigma_x, sigma_y] -> (input px (N, K, 2), scores (N, K)).

        Sigmas are already sigmoid-ed; score = 1 - mean(sigma_x, sigma_y). (N, K, 2) outputs
        get score 1.
        """
        out = np.asarray(outputs, dtype=np.float64)
        if out.ndim != 3 or (out.shape[2] != 2 and out.shape[2] < 4):
            raise ValueError(f"coordinate outputs must be (N, K, 2) or (N, K, 4), got shape {np.shape(outputs)}")
        h, w = self.input_size
        kpts = out[..., :2] * np.array([w, h], dtype=np.float64)
        if out.shape[2] >= 4:
            scores = 1.0 - out[..., 2:4].mean(axis=-1)
        else:
            scores = np.ones(out.shape[:2], dtype=np.float64)
        return kpts, scores

    def flip(self, outputs: np.ndarray, flip_index: Sequence[int]) -> np.ndarray:
        """:func:`flip_coordinates` with this codec's crop width (the exact pixel mirror)."""
        return flip_coordinates(outputs, flip_index, input_width=self.input_size[1])
