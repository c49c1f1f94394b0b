"""Top-down geometry and augmentation: box → centre/scale, affine crops, and the pipeline.

Conventions follow MMPose 1.x (and HRNet before it):

- A person box becomes a centre and a *scale* = (w, h) of the box in image pixels,
  enlarged to the input's aspect ratio and padded by 1.25 (:func:`box_to_center_scale`).
- The crop maps the box (rotated about its centre) onto the input so that the box
  centre lands on ``(W / 2, H / 2)`` and the box width on ``W`` pixels
  (:func:`slimpose.geometry.get_affine_transform`, MMPose's ``get_warp_matrix`` 3-point construction).
- Augmentation order, as in MMPose's top-down configs: flip → half body → random
  box scale/rotation/shift → affine crop → (target encoding) → normalisation.

This module imports no torch: the deploy runtime uses the geometry and
:func:`normalize_crop`.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import cv2
import numpy as np

from slimpose.geometry import get_affine_transform, warp_points
from slimpose.keypoints import KeypointLayout

IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)
IMAGENET_STD_RGB = (58.395, 57.12, 57.375)
BOX_PADDING = 1.25


# --------------------------------------------------------------------------- geometry


def fix_aspect_ratio(scale: np.ndarray, aspect_ratio: float) -> np.ndarray:
    """Enlarge (w, h) boxes, shape (..., 2), to width / height == aspect_ratio."""
    scale = np.asarray(scale, dtype=np.float64)
    w, h = scale[..., 0], scale[..., 1]
    return np.stack([np.where(w > h * aspect_ratio, w, h * aspect_ratio),
                     np.where(w > h * aspect_ratio, w / aspect_ratio, h)], axis=-1)


def box_to_center_scale(box_xywh, aspect_ratio: float, padding: float = BOX_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y, w, h)`` box → centre (2,) and scale (2,) in image pixels.

    The box is enlarged to the input's aspect ratio ``w / h`` and then padded by
    ``padding`` (HRNet's ``_box2cs`` without its /200; MMPose's ``bbox_xyxy2cs`` +
    ``TopdownAffine``'s aspect fix). Also takes (N, 4) boxes, giving (N, 2) arrays.
    """
    box = np.asarray(box_xywh, dtype=np.float64)
    center = box[..., :2] + 0.5 * box[..., 2:4]
    scale = fix_aspect_ratio(box[..., 2:4], aspect_ratio) * padding
    return center, scale


@functools.lru_cache(maxsize=8)
def _normalize_table(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(3, 256) float32: the normalised value of each uint8 level, per channel."""
    levels = np.arange(256, dtype=np.float32)
    return np.stack([(levels - np.float32(m)) * (np.float32(1.0) / np.float32(s)) for m, s in zip(mean, std)])


def normalize_crop(crop_bgr: np.ndarray, mean=IMAGENET_MEAN_RGB, std=IMAGENET_STD_RGB,
                   to_rgb: bool = True) -> np.ndarray:
    """(..., H, W, 3) uint8 BGR crops → (..., 3, H, W) float32, mean/std normalised
    (RGB order unless ``to_rgb`` is False). One crop or a batch."""
    if crop_bgr.ndim < 3 or crop_bgr.shape[-1] != 3:
        raise ValueError(f"expected (H, W, 3) or (N, H, W, 3) BGR images, got shape {crop_bgr.shape}")
    if crop_bgr.dtype == np.uint8:  # the runtime's case: one table lookup per channel, a third of the time
        table = _normalize_table(tuple(map(float, mean)), tuple(map(float, std)))
        out = np.empty((*crop_bgr.shape[:-3], 3, *crop_bgr.shape[-3:-1]), dtype=np.float32)
        for channel in range(3):
            np.take(table[channel], crop_bgr[..., 2 - channel if to_rgb else channel], out=out[..., channel, :, :])
        return out
    x = (crop_bgr[..., ::-1] if to_rgb else crop_bgr).astype(np.float32)
    x -= np.asarray(mean, dtype=np.float32)
    x *= 1.0 / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def _truncated_normal(rng: np.random.Generator, bound: float = 1.0) -> float:
    """Standard normal truncated to [-bound, bound] (rejection sampling; deterministic per rng)."""
    while True:
        v = rng.standard_normal()
        if -bound <= v <= bound:
            return float(v)


# --------------------------------------------------------------------------- transforms
# Each transform takes ``results`` (image, center, scale, rotation, keypoints, visible,
# flipped) and a numpy Generator, and returns the updated dict.


class Compose:
    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, results: dict, rng: np.random.Generator | None = None) -> dict:
        rng = rng if rng is not None else np.random.default_rng()
        for t in self.transforms:
            results = t(results, rng)
        return results

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


class RandomFlip:
    """Horizontal mirror of image, box centre and keypoints, with left/right pairs swapped.

    A pixel column x goes to ``w - 1 - x`` (MMPose ``flip_keypoints``); the centre is
    mirrored the same way so that the crop content stays aligned with the keypoints.
    """

    def __init__(self, layout: KeypointLayout, prob: float = 0.5):
        self.flip_index = np.asarray(layout.flip_index)
        self.prob = prob

    def __call__(self, results: dict, rng: np.random.Generator) -> dict:
        if self.prob <= 0 or rng.random() >= self.prob:
            return results
        image = results["image"]
        w = image.shape[1]
        results["image"] = cv2.flip(image, 1)
        center = np.array(results["center"], dtype=np.float64)
        center[0] = w - 1 - center[0]
        results["center"] = center
        kpts = np.array(results["keypoints"], dtype=np.float64)[self.flip_index]
        vis = np.asarray(results["visible"])[self.flip_index].copy()
        kpts[:, 0] = np.where(vis > 0, w - 1 - kpts[:, 0], kpts[:, 0])
        results["keypoints"] = kpts
        results["visible"] = vis
        results["flipped"] = not results.get("flipped", False)
        return results

    def __repr__(self) -> str:
        return f"RandomFlip(prob={self.prob})"


class RandomHalfBody:
    """Replace the box by the box of the upper- or lower-body joints (MMPose 1.x rule).

    Applies with probability ``prob`` to instances with more than ``min_keypoints``
    labelled joints (HRNet's ``num_joints_half_body = 8``, i.e. MMPose's
    ``min_total_keypoints = 9``). The upper body is chosen with probability 0.7 when
    both halves qualify (>= 2 upper, >= 3 lower joints); otherwise the half that
    qualifies. The new box is the joints' extent, centred on their mean, padded by
    ``padding`` (1.5) and enlarged to the input's aspect ratio.
    """

    def __init__(self, layout: KeypointLayout, prob: float = 0.3, min_keypoints: int = 8, padding: float = 1.5,
                 aspect_ratio: float = 192 / 256, upper_prioritized_prob: float = 0.7,
                 min_upper_keypoints: int = 2, min_lower_keypoints: int = 3):
        self.upper = np.asarray(layout.upper_body, dtype=np.int64)
        self.lower = np.asarray(layout.lower_body, dtype=np.int64)
        self.prob, self.min_keypoints, self.padding = prob, min_keypoints, padding
        self.aspect_ratio = aspect_ratio
        self.upper_prioritized_prob = upper_prioritized_prob
        self.min_upper, self.min_lower = min_upper_keypoints, min_lower_keypoints

    def select(self, visible: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
        visible = np.asarray(visible)
        if (visible > 0).sum() <= self.min_keypoints or self.prob <= 0 or rng.random() >= self.prob:
            return None
        upper = self.upper[visible[self.upper] > 0]
        lower = self.lower[visible[self.lower] > 0]
        prefer_upper = rng.random() < self.upper_prioritized_prob
        if len(upper) < self.min_upper and len(lower) < self.min_lower:
            return None
        if len(lower) < self.min_lower:
            return upper
        if len(upper) < self.min_upper:
            return lower
        return upper if prefer_upper else lower

    def half_body_box(self, keypoints: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sel = np.asarray(keypoints, dtype=np.float64)[ids]
        center = sel.mean(axis=0)
        wh = sel.max(axis=0) - sel.min(axis=0)
        return center, fix_aspect_ratio(wh, self.aspect_ratio) * self.padding

    def __call__(self, results: dict, rng: np.random.Generator) -> dict:
        ids = self.select(results["visible"], rng)
        if ids is None:
            return results
        center, scale = self.half_body_box(results["keypoints"], ids)
        if scale[0] <= 1 or scale[1] <= 1:
            return results
        results["center"], results["scale"] = center, scale
        return results

    def __repr__(self) -> str:
        return f"RandomHalfBody(prob={self.prob}, min_keypoints={self.min_keypoints}, padding={self.padding})"


class RandomBBoxTransform:
    """Random box scale, rotation and shift (MMPose 1.x ``RandomBBoxTransform``).

    - scale factor: normal with mean and half-width of ``scale_range`` as mu and sigma,
      truncated to the range (MMPose); always applied;
    - rotation: normal with sigma ``rotation`` degrees truncated to +-2 sigma (HRNet's
      range, without its pile-up at the clip bounds), applied with ``rotation_prob``;
    - shift: ``shift_factor`` x box size x a normal truncated to +-1, with ``shift_prob``.
    """

    def __init__(self, scale_range=(0.75, 1.25), rotation: float = 40.0, rotation_prob: float = 0.6,
                 shift_factor: float = 0.0, shift_prob: float = 0.3):
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.rotation, self.rotation_prob = float(rotation), rotation_prob
        self.shift_factor, self.shift_prob = float(shift_factor), shift_prob

    def __call__(self, results: dict, rng: np.random.Generator) -> dict:
        scale = np.asarray(results["scale"], dtype=np.float64)
        center = np.asarray(results["center"], dtype=np.float64)
        # Draw every variate every time so the stream does not depend on the outcomes.
        shift_v = np.array([_truncated_normal(rng), _truncated_normal(rng)])
        scale_v = _truncated_normal(rng)
        rot_v = _truncated_normal(rng, 2.0)
        do_shift, do_rot = rng.random() < self.shift_prob, rng.random() < self.rotation_prob
        if self.shift_factor > 0 and do_shift:
            center = center + shift_v * self.shift_factor * scale
        lo, hi = self.scale_range
        scale = scale * (0.5 * (lo + hi) + scale_v * 0.5 * (hi - lo))
        rotation = float(results.get("rotation", 0.0))
        if self.rotation > 0 and do_rot:
            rotation += rot_v * self.rotation
        results["center"], results["scale"], results["rotation"] = center, scale, rotation
        return results

    def __repr__(self) -> str:
        return (f"RandomBBoxTransform(scale_range={self.scale_range}, rotation={self.rotation}, "
                f"rotation_prob={self.rotation_prob}, shift_factor={self.shift_factor}, shift_prob={self.shift_prob})")


class TopdownAffine:
    """Warp the box to the (H, W) input with ``cv2.warpAffine`` (INTER_LINEAR) and move
    the keypoints along. Keypoints falling outside the crop keep their flag: the codec
    decides what an out-of-crop joint weighs."""

    def __init__(self, input_size):
        self.input_size = (int(input_size[0]), int(input_size[1]))

    def __call__(self, results: dict, rng: np.random.Generator | None = None) -> dict:
        h, w = self.input_size
        matrix = get_affine_transform(results["center"], results["scale"], results.get("rotation", 0.0), (w, h))
        results["image"] = cv2.warpAffine(results["image"], matrix, (w, h), flags=cv2.INTER_LINEAR)
        results["keypoints"] = warp_points(results["keypoints"], matrix).astype(np.float32)
        results["matrix"] = matrix
        return results

    def __repr__(self) -> str:
        return f"TopdownAffine(input_size={self.input_size})"


class NormalizeImage:
    """(H, W, 3) uint8 BGR → (3, H, W) float32, RGB unless ``to_rgb`` is False, with the
    model's mean/std in 0-255 units (ImageNet by default)."""

    def __init__(self, mean=IMAGENET_MEAN_RGB, std=IMAGENET_STD_RGB, to_rgb: bool = True):
        self.mean, self.std, self.to_rgb = tuple(mean), tuple(std), bool(to_rgb)

    def __call__(self, results: dict, rng: np.random.Generator | None = None) -> dict:
        results["image"] = normalize_crop(results["image"], self.mean, self.std, self.to_rgb)
        return results

    def __repr__(self) -> str:
        return "NormalizeImage()"


def build_pipeline(aug, layout: KeypointLayout, input_size, train: bool, normalize: bool = True,
                   normalization: NormalizeImage | None = None) -> Compose:
    """The top-down pipeline: for training flip → half body → box transform → affine →
    normalise; for validation affine → normalise. ``aug`` is an ``AugmentConfig``;
    ``input_size`` is (H, W). ``normalize=False`` stops at the uint8 crop (pictures);
    ``normalization`` is the model's (ImageNet RGB when None)."""
    aspect_ratio = input_size[1] / input_size[0]
    steps: list = []
    if train:
        steps += [
            RandomFlip(layout, prob=aug.flip_prob),
            RandomHalfBody(layout, prob=aug.half_body_prob, min_keypoints=aug.half_body_min_keypoints,
                           aspect_ratio=aspect_ratio),
            RandomBBoxTransform(scale_range=aug.scale_range, rotation=aug.rotation, rotation_prob=aug.rotation_prob,
                                shift_factor=aug.shift_factor, shift_prob=aug.shift_prob),
        ]
    steps.append(TopdownAffine(input_size))
    if normalize:
        steps.append(normalization or NormalizeImage())
    return Compose(steps)
