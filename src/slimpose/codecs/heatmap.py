"""Gaussian heatmap codec: targets for training, keypoints from network heatmaps.

Conventions (HRNet / MMPose / LPN, see SPEC section 1):

* Heatmap pixel ``j`` corresponds to input-crop pixel ``j * stride`` where
  ``stride = input_size / heatmap_size`` (separately for x and y, 4 by default).
  Keypoints are in input-crop pixels, pixel-index convention (pixel ``p`` covers
  ``[p - 0.5, p + 0.5]``).
* Encoding is MMPose's "unbiased" Gaussian: ``exp(-((x - mu_x)^2 + (y - mu_y)^2) /
  (2 sigma^2))`` evaluated on the whole heatmap at the exact sub-pixel centre, sigma in
  heatmap pixels. The target weight is 0 for an unlabeled joint and for a joint whose
  ``3 sigma`` window falls entirely outside the heatmap (the HRNet / MMPose rule).
* Decoding methods:

  - ``"argmax"``: maximum location + 0.25 px toward the higher neighbour along each axis
    (HRNet). The neighbour test needs both neighbours (``0 < px < w - 1``).
  - ``"dark"``: DARK (Zhang et al. 2020) as in MMPose: Gaussian blur with a kernel
    matched to sigma (size ``int((20 sigma - 7) / 3)`` made odd, zero padding, max
    preserved), log, then one Newton step with the finite-difference gradient and
    Hessian at the maximum (``1 < px < w - 2``).
  - ``"softargmax"``: LPN's beta-soft-argmax: softmax(beta * heatmap) over H x W, the
    expected x and y, then (``refine=True``, the LPN code's default) the same
    quarter-pixel step as argmax at the rounded location.

  Scores are the heatmap values at the integer maximum (argmax, dark) or at the rounded
  soft-argmax location (softargmax). Unlike HRNet, locations whose maximum is <= 0 are
  not moved to (0, 0): pycocotools scores every predicted location regardless of its
  confidence, so keeping the best guess never hurts.

Note on beta = 160: on a unit-peak Gaussian of sigma 2 the softmax of ``160 * H`` is a
Gaussian of std ``sigma / sqrt(beta) ~= 0.16`` px, far narrower than the pixel grid, so
the expectation snaps to the nearest pixel and beta-soft-argmax at 160 behaves like
argmax; the quarter-pixel refinement then makes it behave like argmax + shift. A smaller
beta (about 20-40 on 64x48 maps) with ``refine=False`` is a genuinely sub-pixel
estimator (error ~0.01 px on clean Gaussians). This module is numpy-only (no torch).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from slimpose.codecs.base import KeypointCodec, MetadataFieldError, read_bool, read_choice, read_number, read_size

DECODE_METHODS = ("argmax", "dark", "softargmax")


# --------------------------------------------------------------------------- encoding


def generate_gaussian_heatmaps(
    heatmap_size: tuple[int, int],
    keypoints: np.ndarray,
    visible: np.ndarray,
    sigma: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Unbiased Gaussian heatmaps for keypoints given in HEATMAP pixels.

    ``heatmap_size`` is (h, w); ``keypoints`` (K, 2) as (x, y); ``visible`` (K,).
    Returns ``(heatmaps (K, h, w) float32, target_weight (K,) float32)``.
    """
    h, w = int(heatmap_size[0]), int(heatmap_size[1])
    kpts = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    vis = np.asarray(visible, dtype=np.float64).reshape(-1)
    if vis.shape[0] != kpts.shape[0]:
        raise ValueError(f"{kpts.shape[0]} keypoints but {vis.shape[0]} visibility values")
    k = kpts.shape[0]
    heatmaps = np.zeros((k, h, w), dtype=np.float32)
    weight = ((vis > 0) & np.isfinite(kpts).all(axis=1)).astype(np.float32)
    radius = 3.0 * sigma
    xs = np.arange(w, dtype=np.float64)
    ys = np.arange(h, dtype=np.float64)
    for j in range(k):
        if weight[j] == 0:
            continue
        mx, my = kpts[j]
        # HRNet / MMPose window test; floor instead of their int() truncation, which
        # differs only for windows ending at a negative coordinate.
        left, top = math.floor(mx - radius), math.floor(my - radius)
        right, bottom = math.floor(mx + radius + 1), math.floor(my + radius + 1)
        if left >= w or top >= h or right < 0 or bottom < 0:
            weight[j] = 0.0
            continue
        gx = np.exp(-((xs - mx) ** 2) / (2.0 * sigma**2))
        gy = np.exp(-((ys - my) ** 2) / (2.0 * sigma**2))
        heatmaps[j] = np.outer(gy, gx).astype(np.float32)
    return heatmaps, weight


# --------------------------------------------------------------------------- decoding


def _check_heatmaps(heatmaps: np.ndarray) -> np.ndarray:
    hm = np.asarray(heatmaps)
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must be (N, K, h, w), got shape {hm.shape}")
    return hm


def get_heatmap_maximum(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer argmax locations ``(N, K, 2)`` as (x, y) float and maxima ``(N, K)``."""
    hm = _check_heatmaps(heatmaps)
    n, k, h, w = hm.shape
    flat = hm.reshape(n, k, h * w)
    idx = np.argmax(flat, axis=2)
    vals = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    coords = np.stack([idx % w, idx // w], axis=-1).astype(np.float64)
    return coords, vals.astype(np.float64)


def refine_quarter_offset(heatmaps: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """HRNet's +-0.25 px step toward the higher neighbour at the rounded location.

    Each axis is refined independently when both of its neighbours exist.
    """
    hm = _check_heatmaps(heatmaps)
    n, k, h, w = hm.shape
    coords = np.array(coords, dtype=np.float64, copy=True)
    px = np.floor(coords[..., 0] + 0.5).astype(np.int64)
    py = np.floor(coords[..., 1] + 0.5).astype(np.int64)
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    inx = (px > 0) & (px < w - 1) & (py >= 0) & (py < h)
    iny = (py > 0) & (py < h - 1) & (px >= 0) & (px < w)
    pxc, pyc = np.clip(px, 1, max(w - 2, 1)), np.clip(py, 1, max(h - 2, 1))
    pxs, pys = np.clip(px, 0, w - 1), np.clip(py, 0, h - 1)
    if w >= 3:
        dx = hm[ni, ki, pys, np.minimum(pxc + 1, w - 1)] - hm[ni, ki, pys, pxc - 1]
        coords[..., 0] += np.where(inx, np.sign(dx), 0.0) * 0.25
    if h >= 3:
        dy = hm[ni, ki, np.minimum(pyc + 1, h - 1), pxs] - hm[ni, ki, pyc - 1, pxs]
        coords[..., 1] += np.where(iny, np.sign(dy), 0.0) * 0.25
    return coords


def dark_kernel_size(sigma: float) -> int:
    """MMPose's blur kernel size for DARK: ``int((20 sigma - 7) / 3)``, made odd (>= 3)."""
    size = int((20.0 * sigma - 7.0) / 3.0)
    if size % 2 == 0:
        size += 1
    return max(size, 3)


def _gaussian_kernel_1d(size: int) -> np.ndarray:
    # OpenCV's sigma for a given kernel size when sigma=0 is passed to GaussianBlur.
    s = 0.3 * ((size - 1) * 0.5 - 1.0) + 0.8
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(r**2) / (2.0 * s * s))
    return g / g.sum()


def gaussian_blur(heatmaps: np.ndarray, kernel: int = 11) -> np.ndarray:
    """Separable Gaussian blur with zero padding that keeps each map's maximum (DARK)."""
    hm = np.asarray(heatmaps, dtype=np.float64)
    n, k, h, w = hm.shape
    g = _gaussian_kernel_1d(kernel)
    p = (kernel - 1) // 2
    orig_max = hm.reshape(n, k, -1).max(axis=2)
    padded = np.pad(hm, ((0, 0), (0, 0), (p, p), (p, p)))
    tmp = np.zeros((n, k, h + 2 * p, w), dtype=np.float64)
    for i in range(kernel):
        tmp += g[i] * padded[:, :, :, i : i + w]
    out = np.zeros((n, k, h, w), dtype=np.float64)
    for i in range(kernel):
        out += g[i] * tmp[:, :, i : i + h, :]
    new_max = out.reshape(n, k, -1).max(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(new_max != 0, orig_max / new_max, 0.0)
    return out * ratio[..., None, None]


@functools.lru_cache(maxsize=8)
def _blur_matrix(kernel: int, size: int) -> np.ndarray:
    """(size + kernel - 1, size): ``row @ matrix`` is the 1-D Gaussian blur of a padded
    row at its ``size`` inner pixels (column c holds the kernel on rows c .. c + kernel - 1)."""
    g = _gaussian_kernel_1d(kernel)
    matrix = np.zeros((size + kernel - 1, size))
    for c in range(size):
        matrix[c:c + kernel, c] = g
    return matrix


def _blurred_windows(maps: np.ndarray, x: np.ndarray, y: np.ndarray, kernel: int, radius: int) -> np.ndarray:
    """:func:`gaussian_blur`'s zero-padded blur of each map ``maps[m]`` (M, h, w), evaluated
    only on the (2 radius + 1)^2 pixels around ``(x[m], y[m])`` and without its rescaling
    (each window is off by one factor per map). ``radius <= x < w - radius``, same for y."""
    m, h, w = maps.shape
    p = (kernel - 1) // 2
    padded = np.zeros((m, h + 2 * p, w + 2 * p))
    padded[:, p:p + h, p:p + w] = maps
    span = np.arange(2 * radius + 2 * p + 1)  # padded pixels the window's blur reads
    rows = (y - radius)[:, None] + span
    cols = (x - radius)[:, None] + span
    patch = padded[np.arange(m)[:, None, None], rows[:, :, None], cols[:, None, :]]
    blur = _blur_matrix(kernel, 2 * radius + 1)
    return blur.T @ (patch @ blur)  # along rows, then along columns


def refine_dark(heatmaps: np.ndarray, coords: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """DARK sub-pixel refinement of integer maxima ``coords`` (N, K, 2).

    The log-heatmap's derivatives need the blurred map only within two pixels of each
    maximum, so only those 5x5 windows are blurred (most of the decoding time otherwise);
    :func:`gaussian_blur`'s per-map rescaling adds a constant to the log and drops out."""
    hm = _check_heatmaps(heatmaps)
    n, k, h, w = hm.shape
    coords = np.array(coords, dtype=np.float64, copy=True)
    px = coords[..., 0].astype(np.int64)
    py = coords[..., 1].astype(np.int64)
    ok = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    if not ok.any():
        return coords
    ni, ki = np.nonzero(ok)
    blurred = _blurred_windows(np.asarray(hm[ni, ki], dtype=np.float64), px[ok], py[ok], dark_kernel_size(sigma), 2)
    lg = np.log(np.maximum(blurred, 1e-10))

    def at(dy: int, dx: int) -> np.ndarray:
        return lg[:, 2 + dy, 2 + dx]

    dx = 0.5 * (at(0, 1) - at(0, -1))
    dy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = 0.25 * (at(0, 2) - 2.0 * at(0, 0) + at(0, -2))
    dyy = 0.25 * (at(2, 0) - 2.0 * at(0, 0) + at(-2, 0))
    dxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    det = dxx * dyy - dxy**2
    good = det != 0
    safe = np.where(good, det, 1.0)
    # offset = -H^-1 g with H^-1 = [[dyy, -dxy], [-dxy, dxx]] / det
    ox = -(dyy * dx - dxy * dy) / safe
    oy = -(-dxy * dx + dxx * dy) / safe
    coords[ni, ki, 0] += np.where(good, ox, 0.0)
    coords[ni, ki, 1] += np.where(good, oy, 0.0)
    return coords


def soft_argmax(heatmaps: np.ndarray, beta: float = 160.0) -> np.ndarray:
    """Expected (x, y) of ``softmax(beta * heatmap)`` over each map: (N, K, 2)."""
    hm = _check_heatmaps(heatmaps).astype(np.float64)
    n, k, h, w = hm.shape
    z = beta * hm.reshape(n, k, h * w)
    z -= z.max(axis=2, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=2, keepdims=True)
    p = p.reshape(n, k, h, w)
    ex = (p.sum(axis=2) * np.arange(w, dtype=np.float64)).sum(axis=2)
    ey = (p.sum(axis=3) * np.arange(h, dtype=np.float64)).sum(axis=2)
    return np.stack([ex, ey], axis=-1)


def decode_heatmaps(
    heatmaps: np.ndarray,
    method: str = "argmax",
    beta: float = 160.0,
    sigma: float = 2.0,
    refine: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints in HEATMAP pixels ``(N, K, 2)`` and scores ``(N, K)`` from heatmaps.

    ``refine`` switches the quarter-pixel step of "argmax" and "softargmax" (off gives
    plain argmax / plain soft-argmax); DARK ignores it.
    """
    hm = _check_heatmaps(heatmaps)
    if method not in DECODE_METHODS:
        raise ValueError(f"unknown heatmap decode method {method!r}; use one of {', '.join(DECODE_METHODS)}")
    hm = hm.astype(np.float64, copy=False)
    n, k, h, w = hm.shape
    if method == "softargmax":
        coords = soft_argmax(hm, beta)
        px = np.clip(np.floor(coords[..., 0] + 0.5).astype(np.int64), 0, w - 1)
        py = np.clip(np.floor(coords[..., 1] + 0.5).astype(np.int64), 0, h - 1)
        ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
        scores = hm[ni, ki, py, px]
        if refine:
            coords = refine_quarter_offset(hm, coords)
        return coords, scores
    coords, scores = get_heatmap_maximum(hm)
    if method == "argmax":
        if refine:
            coords = refine_quarter_offset(hm, coords)
    else:
        coords = refine_dark(hm, coords, sigma)
    return coords, scores


# --------------------------------------------------------------------------- flip test


def flip_heatmaps(heatmaps: np.ndarray, flip_index: Sequence[int], shift: bool = True) -> np.ndarray:
    """Heatmaps predicted on a mirrored crop, brought back to the original crop.

    Mirrors the maps horizontally, swaps the channels by ``flip_index`` and, with
    ``shift`` (HRNet's ``SHIFT_HEATMAP``), moves everything one heatmap pixel to the
    right (column 0 keeps its value). With the shift a heatmap column ``j`` of the flipped
    prediction maps to ``w - j``, an involution on columns 1..w-1, so flipping twice
    gives back the input except column 0. Relative to the exact mirror of an input pixel
    (``W - 1 - p``) this leaves HRNet's known residual of +1 input pixel (+1/stride
    heatmap pixel) in x; averaging with the unflipped prediction halves it.
    """
    hm = _check_heatmaps(heatmaps)
    index = list(flip_index)
    if len(index) != hm.shape[1]:
        raise ValueError(f"flip_index has {len(index)} entries for {hm.shape[1]} heatmap channels")
    out = hm[:, index, :, ::-1].copy()
    if shift and out.shape[3] > 1:
        out[:, :, :, 1:] = out[:, :, :, :-1].copy()
    return out


# --------------------------------------------------------------------------- codec


class HeatmapCodec(KeypointCodec):
    """Encode keypoints to Gaussian heatmaps and decode heatmaps to keypoints.

    ``input_size`` and ``heatmap_size`` are (H, W); the heatmap defaults to input / 4.
    ``flip_shift`` is HRNet's one-pixel shift in the flip test (:func:`flip_heatmaps`).
    """

    output_kind = "heatmap"
    instance_ndim = 3

    def __init__(
        self,
        input_size: tuple[int, int] = (256, 192),
        heatmap_size: tuple[int, int] | None = None,
        sigma: float = 2.0,
        decode: str = "argmax",
        beta: float = 160.0,
        refine: bool = True,
        flip_shift: bool = True,
    ) -> None:
        if decode not in DECODE_METHODS:
            raise ValueError(f"unknown heatmap decode method {decode!r}; use one of {', '.join(DECODE_METHODS)}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        if heatmap_size is None:
            heatmap_size = (self.input_size[0] // 4, self.input_size[1] // 4)
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        if min(self.heatmap_size) <= 0 or min(self.input_size) <= 0:
            raise ValueError(f"bad sizes: input {self.input_size}, heatmap {self.heatmap_size}")
        self.sigma = float(sigma)
        # Name kept for the API: ``codec.decode`` is the method; the chosen decoding
        # is ``codec.decode_method``.
        self.decode_method = decode
        self.beta = float(beta)
        self.refine = bool(refine)
        self.flip_shift = bool(flip_shift)

    @classmethod
    def from_options(cls, input_size, sigma, decode, beta, **options) -> HeatmapCodec:
        return cls(input_size=input_size, sigma=sigma, decode=decode, beta=beta, **options)

    @classmethod
    def from_fields(cls, input_size, fields: dict, decode: str | None = None) -> HeatmapCodec:
        if decode is not None and decode not in DECODE_METHODS:
            raise MetadataFieldError("decode", f"unknown heatmap decoding {decode!r}; use one of {', '.join(DECODE_METHODS)}")
        return cls(input_size=input_size, heatmap_size=read_size(fields, "heatmap_size"),
                   sigma=read_number(fields, "sigma", positive=True),
                   decode=decode or read_choice(fields, "decode", DECODE_METHODS),
                   beta=read_number(fields, "beta", positive=True), refine=read_bool(fields, "refine", True),
                   flip_shift=read_bool(fields, "flip_shift"))

    @property
    def stride(self) -> tuple[float, float]:
        """(stride_x, stride_y): input pixels per heatmap pixel."""
        return (self.input_size[1] / self.heatmap_size[1], self.input_size[0] / self.heatmap_size[0])

    def __repr__(self) -> str:
        return (f"HeatmapCodec(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
                f"sigma={self.sigma}, decode={self.decode_method!r}, beta={self.beta})")

    def export_metadata(self) -> dict:
        return {"output_kind": self.output_kind, "heatmap_size": list(self.heatmap_size),
                "heatmap_stride": list(self.stride),  # (x, y) input pixels per heatmap pixel
                "sigma": self.sigma, "decode": self.decode_method, "beta": self.beta, "refine": self.refine,
                "flip_shift": self.flip_shift}

    def fitted_to(self, output_shape) -> HeatmapCodec:
        if len(output_shape) != 4:
            return self
        (h, w), (hh, hw) = self.input_size, output_shape[2:]
        if h * hw != w * hh:
            raise ValueError(f"its {hh}x{hw} heatmaps are not the {h}x{w} input scaled by one factor, so decoded "
                             "joints would be misplaced; choose an input size whose sides are multiples of 32")
        return HeatmapCodec(self.input_size, tuple(output_shape[2:]), self.sigma, self.decode_method, self.beta,
                            self.refine, self.flip_shift)

    def output_shape_problem(self, shape, num_keypoints: int) -> str | None:
        want = (num_keypoints, *self.heatmap_size)
        if len(shape) != 4 or tuple(shape[1:]) != want:
            return f"expected heatmaps (N, {want[0]}, {want[1]}, {want[2]}), got {tuple(shape)}"
        return None

    def encode(self, keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, 2) keypoints in input-crop pixels -> ((K, h, w) heatmaps, (K,) weights)."""
        sx, sy = self.stride
        kpts = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2) / np.array([sx, sy])
        return generate_gaussian_heatmaps(self.heatmap_size, kpts, visible, self.sigma)

    def decode_batch(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, K, h, w) heatmaps -> (keypoints (N, K, 2) input-crop px, scores (N, K))."""
        coords, scores = decode_heatmaps(heatmaps, self.decode_method, self.beta, self.sigma, self.refine)
        sx, sy = self.stride
        return coords * np.array([sx, sy]), scores

    def flip(self, heatmaps: np.ndarray, flip_index: Sequence[int]) -> np.ndarray:
        """:func:`flip_heatmaps` with this codec's ``flip_shift``."""
        return flip_heatmaps(heatmaps, flip_index, self.flip_shift)
