"""Box to centre/scale and the augmentation transforms."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from slimpose.config import AugmentConfig
from slimpose.data.transforms import (
    IMAGENET_MEAN_RGB,
    IMAGENET_STD_RGB,
    Compose,
    NormalizeImage,
    RandomBBoxTransform,
    RandomFlip,
    RandomHalfBody,
    TopdownAffine,
    box_to_center_scale,
    build_pipeline,
    normalize_crop,
)
from slimpose.keypoints import COCO17, LSP14


def test_box_to_center_scale_fixes_aspect_and_pads():
    c, s = box_to_center_scale([10, 20, 100, 50], aspect_ratio=0.75)
    np.testing.assert_allclose(c, [60, 45])
    # wide box: height grows to w / 0.75, then both x 1.25
    np.testing.assert_allclose(s, [125, 100 / 0.75 * 1.25])
    c, s = box_to_center_scale([0, 0, 30, 120], aspect_ratio=0.75, padding=1.0)
    np.testing.assert_allclose(s, [90, 120])
    # batched
    c, s = box_to_center_scale(np.array([[0, 0, 30, 120], [10, 20, 100, 50]]), 0.75)
    assert c.shape == (2, 2) and s.shape == (2, 2)


def test_topdown_affine_moves_pixels_with_keypoints():
    image = np.zeros((300, 400, 3), np.uint8)
    kp = np.array([[250.0, 120.0]])
    cv2.circle(image, (250, 120), 3, (255, 255, 255), -1)
    results = {"image": image, "center": np.array([230.0, 140.0]), "scale": np.array([120.0, 160.0]),
               "rotation": 35.0, "keypoints": kp, "visible": np.ones(1), "flipped": False}
    out = TopdownAffine((256, 192))(results, np.random.default_rng(0))
    assert out["image"].shape == (256, 192, 3) and out["image"].dtype == np.uint8
    x, y = out["keypoints"][0]
    ys, xs = np.nonzero(out["image"][..., 0] > 128)
    assert abs(xs.mean() - x) < 1.0 and abs(ys.mean() - y) < 1.0


def _coco_results(width=200, height=160):
    image = np.zeros((height, width, 3), np.uint8)
    kpts = np.zeros((17, 2))
    vis = np.zeros(17, np.float32)
    kpts[5] = [40, 50]  # left shoulder
    kpts[6] = [120, 52]
    vis[5] = vis[6] = 1
    return {"image": image, "center": np.array([80.0, 60.0]), "scale": np.array([150.0, 200.0]), "rotation": 0.0,
            "keypoints": kpts, "visible": vis, "flipped": False}


def test_flip_mirrors_and_swaps_pairs():
    r = _coco_results()
    r["image"][50, 40] = 255  # a marker under the left shoulder
    out = RandomFlip(COCO17, prob=1.0)(r, np.random.default_rng(0))
    assert out["flipped"] is True
    # the left-shoulder slot now holds the mirrored RIGHT shoulder, and vice versa
    np.testing.assert_allclose(out["keypoints"][5], [200 - 1 - 120, 52])
    np.testing.assert_allclose(out["keypoints"][6], [200 - 1 - 40, 50])
    np.testing.assert_allclose(out["center"], [200 - 1 - 80, 60])
    assert out["image"][50, 200 - 1 - 40].max() == 255  # pixel and keypoint moved together
    assert out["visible"][5] == 1 and out["visible"][6] == 1
    # prob 0: untouched
    r = _coco_results()
    assert RandomFlip(COCO17, prob=0.0)(r, np.random.default_rng(0))["flipped"] is False


def test_half_body_box():
    layout = COCO17
    kpts = np.array([[100 + 3 * j, 50 + 12 * j] for j in range(17)], dtype=np.float64)
    vis = np.ones(17, np.float32)
    hb = RandomHalfBody(layout, prob=1.0, min_keypoints=8, padding=1.5, aspect_ratio=0.75, upper_prioritized_prob=1.0)
    r = {"keypoints": kpts, "visible": vis, "center": np.zeros(2), "scale": np.ones(2) * 500}
    out = hb(dict(r), np.random.default_rng(0))
    upper = kpts[list(layout.upper_body)]
    np.testing.assert_allclose(out["center"], upper.mean(axis=0))
    w, h = upper.max(axis=0) - upper.min(axis=0)
    w = max(w, h * 0.75)
    h = w / 0.75
    np.testing.assert_allclose(out["scale"], [w * 1.5, h * 1.5])
    # lower body preferred when prioritising it
    hb_low = RandomHalfBody(layout, prob=1.0, aspect_ratio=0.75, upper_prioritized_prob=0.0)
    out = hb_low(dict(r), np.random.default_rng(0))
    np.testing.assert_allclose(out["center"], kpts[list(layout.lower_body)].mean(axis=0))
    # only the upper half labelled: upper is used even when lower is preferred
    vis2 = vis.copy()
    vis2[list(layout.lower_body)] = 0
    out = hb_low({**r, "visible": vis2}, np.random.default_rng(0))
    np.testing.assert_allclose(out["center"], upper.mean(axis=0))
    # too few labelled joints (<= min_keypoints): untouched
    vis3 = np.zeros(17, np.float32)
    vis3[:8] = 1
    out = hb({**r, "visible": vis3}, np.random.default_rng(0))
    np.testing.assert_allclose(out["scale"], [500, 500])


def test_bbox_transform_ranges():
    t = RandomBBoxTransform(scale_range=(0.75, 1.25), rotation=40, rotation_prob=0.6, shift_factor=0.1, shift_prob=0.5)
    rng = np.random.default_rng(0)
    rots, scales, shifts = [], [], []
    for _ in range(2000):
        out = t({"center": np.array([100.0, 100.0]), "scale": np.array([100.0, 100.0]), "rotation": 0.0}, rng)
        rots.append(out["rotation"])
        scales.append(out["scale"][0] / 100)
        shifts.append(np.abs(out["center"] - 100).max())
    rots, scales, shifts = np.array(rots), np.array(scales), np.array(shifts)
    assert np.abs(rots).max() <= 80 + 1e-9
    assert 0.55 < np.mean(rots != 0) < 0.65
    assert 30 < np.std(rots[rots != 0]) < 40  # truncated N(0, 40) at +-80
    assert scales.min() >= 0.75 and scales.max() <= 1.25
    assert shifts.max() <= 10 + 1e-9 and 0.45 < np.mean(shifts > 0) < 0.55


def test_normalize_crop():
    crop = np.zeros((4, 3, 3), np.uint8)
    crop[..., 2] = 255  # red in BGR
    out = normalize_crop(crop)
    assert out.shape == (3, 4, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], (255 - IMAGENET_MEAN_RGB[0]) / IMAGENET_STD_RGB[0], rtol=1e-5)  # R first
    np.testing.assert_allclose(out[2], -IMAGENET_MEAN_RGB[2] / IMAGENET_STD_RGB[2], rtol=1e-5)
    r = NormalizeImage()({"image": crop}, None)
    np.testing.assert_array_equal(r["image"], out)


@pytest.mark.parametrize("shape", [(16, 12, 3), (2, 16, 12, 3)])
@pytest.mark.parametrize("to_rgb", [True, False])
def test_normalize_crop_uint8_table_equals_float_arithmetic(shape, to_rgb):
    """uint8 crops (the runtime's) go through a per-channel lookup table; float ones
    through arithmetic: the same float32 values either way, every level included."""
    crop = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)
    crop.reshape(-1)[:256] = np.arange(256)
    mean, std = (10.0, 128.0, 250.5), (1.5, 64.0, 3.0)
    fast = normalize_crop(crop, mean, std, to_rgb)
    assert fast.dtype == np.float32 and fast.flags.c_contiguous
    np.testing.assert_array_equal(fast, normalize_crop(crop.astype(np.float32), mean, std, to_rgb))


def _scene(rng):
    """An image with a bright dot under each labelled LSP joint."""
    image = (rng.integers(0, 60, (240, 320, 3))).astype(np.uint8)
    kpts = np.stack([rng.uniform(100, 220, 14), rng.uniform(60, 200, 14)], axis=1)
    for x, y in kpts:
        cv2.circle(image, (int(round(x)), int(round(y))), 2, (255, 255, 255), -1)
    return image, kpts


def test_train_pipeline_keeps_keypoints_on_their_pixels_and_is_deterministic():
    aug = AugmentConfig(shift_factor=0.1, half_body_prob=0.5)
    pipe = build_pipeline(aug, LSP14, (128, 96), train=True, normalize=False)
    rng = np.random.default_rng(3)
    image, kpts = _scene(rng)
    c, s = box_to_center_scale([100, 60, 120, 140], 0.75)
    flips = 0
    for seed in range(20):
        r = pipe({"image": image, "center": c, "scale": s, "rotation": 0.0, "keypoints": kpts.copy(),
                  "visible": np.ones(14, np.float32), "flipped": False}, np.random.default_rng(seed))
        flips += r["flipped"]
        crop = r["image"]
        assert crop.shape == (128, 96, 3)
        for x, y in r["keypoints"]:
            xi, yi = int(round(x)), int(round(y))
            if 1 <= xi < 95 and 1 <= yi < 127:
                assert crop[yi - 1:yi + 2, xi - 1:xi + 2].max() > 100, (seed, x, y)
    assert 0 < flips < 20
    # same seed → same crop, keypoints and parameters; another seed differs
    def run(seed):
        return Compose(build_pipeline(aug, LSP14, (128, 96), train=True).transforms)(
            {"image": image, "center": c, "scale": s, "rotation": 0.0, "keypoints": kpts.copy(),
             "visible": np.ones(14, np.float32), "flipped": False}, np.random.default_rng(seed))
    a, b, d = run(7), run(7), run(8)
    assert a["image"].dtype == np.float32 and a["image"].shape == (3, 128, 96)
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["keypoints"], b["keypoints"])
    assert a["rotation"] == b["rotation"]
    assert not np.array_equal(a["keypoints"], d["keypoints"])


def test_val_pipeline_is_affine_and_normalise_only():
    pipe = build_pipeline(AugmentConfig(), COCO17, (256, 192), train=False)
    names = [type(t).__name__ for t in pipe.transforms]
    assert names == ["TopdownAffine", "NormalizeImage"]
