"""Affine crop geometry shared by the data pipeline, the codecs and the deploy runtime.

A person box (centre, *scale* = (w, h) in image pixels, a rotation about the centre) is
mapped onto an input crop so that the centre lands on ``(W / 2, H / 2)`` and the box
width on ``W`` pixels (MMPose 1.x ``get_warp_matrix``); :func:`crop_to_image` maps
predictions back. numpy only.
"""

from __future__ import annotations

import numpy as np


def _rotate(pt: np.ndarray, angle_rad: float) -> np.ndarray:
    sn, cs = np.sin(angle_rad), np.cos(angle_rad)
    return np.array([cs * pt[0] - sn * pt[1], sn * pt[0] + cs * pt[1]])


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a - b
    return b + np.array([-d[1], d[0]])


def _affine_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The (2, 3) affine map taking three points ``src`` onto ``dst`` (float64 solve)."""
    a = np.concatenate([src, np.ones((3, 1))], axis=1)
    return np.linalg.solve(a, dst).T


def get_affine_transform(center, scale, rotation_deg: float, output_size, inverse: bool = False,
                         shift=(0.0, 0.0)) -> np.ndarray:
    """(2, 3) matrix mapping the box (``scale`` = w, h, rotated about ``center``) onto
    an ``output_size`` = (W, H) crop; ``inverse=True`` maps the crop back to the image.

    The 3-point construction of MMPose 1.x ``get_warp_matrix`` (fixed aspect ratio):
    the centre goes to (W/2, H/2), the point half a box width to the left (rotated)
    goes to (0, H/2), and a third point at right angles fixes the rest. Solved in
    float64, so the forward and inverse matrices are exact inverses of each other.
    """
    center = np.asarray(center, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    src_w = scale[0]
    dst_w, dst_h = float(output_size[0]), float(output_size[1])
    rot = np.deg2rad(rotation_deg)
    src = np.zeros((3, 2))
    dst = np.zeros((3, 2))
    src[0] = center + scale * np.asarray(shift, dtype=np.float64)
    src[1] = src[0] + _rotate(np.array([-0.5 * src_w, 0.0]), rot)
    dst[0] = [0.5 * dst_w, 0.5 * dst_h]
    dst[1] = dst[0] + np.array([-0.5 * dst_w, 0.0])
    src[2] = _third_point(src[0], src[1])
    dst[2] = _third_point(dst[0], dst[1])
    return _affine_from_points(dst, src) if inverse else _affine_from_points(src, dst)


def warp_points(points, matrix) -> np.ndarray:
    """Apply a (2, 3) affine matrix to points of shape (..., 2)."""
    points = np.asarray(points, dtype=np.float64)
    matrix = np.asarray(matrix, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def crop_to_image(points, centers, scales, input_size, rotations=None) -> np.ndarray:
    """Map points (N, K, 2) in input-crop pixels back to image pixels.

    ``input_size`` is (H, W); ``centers``/``scales`` are (N, 2); ``rotations`` (N,) in
    degrees or None. The exact inverse of :func:`get_affine_transform` (a similarity:
    p = c + (w / W) * R(rot) (q - (W/2, H/2))), vectorised over the batch.
    """
    points = np.asarray(points, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 1, 2)
    scales = np.asarray(scales, dtype=np.float64).reshape(-1, 2)
    in_h, in_w = float(input_size[0]), float(input_size[1])
    q = points - np.array([0.5 * in_w, 0.5 * in_h])
    ratio = (scales[:, 0] / in_w).reshape(-1, 1, 1)
    if rotations is None:
        return (q * ratio + centers).astype(np.float32)
    rot = np.deg2rad(np.asarray(rotations, dtype=np.float64).reshape(-1, 1))
    cs, sn = np.cos(rot), np.sin(rot)
    x = cs * q[..., 0] - sn * q[..., 1]
    y = sn * q[..., 0] + cs * q[..., 1]
    return (np.stack([x, y], axis=-1) * ratio + centers).astype(np.float32)
