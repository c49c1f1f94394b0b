"""Coordinate (RLE) codec and its flip helper."""

from __future__ import annotations

import numpy as np
import pytest

from slimpose.codecs import CoordinateCodec, flip_coordinates
from slimpose.keypoints import COCO17, LSP14

INPUT = (256, 192)  # (H, W)


def test_encode_normalises_and_weights():
    codec = CoordinateCodec(INPUT)
    kpts = np.array([[96.0, 128.0], [0.0, 0.0], [191.9, 255.9], [192.0, 10.0], [-0.1, 10.0], [10.0, 10.0]])
    vis = np.array([2, 1, 1, 1, 1, 0])
    target, weight = codec.encode(kpts, vis)
    assert target.dtype == np.float32 and weight.dtype == np.float32 and target.shape == (6, 2)
    np.testing.assert_allclose(target[0], [0.5, 0.5])
    np.testing.assert_allclose(target[2], [191.9 / 192, 255.9 / 256], rtol=1e-6)
    np.testing.assert_array_equal(weight, [1, 1, 1, 0, 0, 0])


def test_decode_scores_and_roundtrip():
    codec = CoordinateCodec(INPUT)
    rng = np.random.default_rng(0)
    kpts = np.stack([rng.uniform(0, 191, 17), rng.uniform(0, 255, 17)], axis=1)
    target, _ = codec.encode(kpts, np.ones(17))
    sig = rng.uniform(0, 1, (17, 2))
    out = np.concatenate([target, sig], axis=1)[None]
    dec, scores = codec.decode(out)
    assert dec.shape == (1, 17, 2) and scores.shape == (1, 17)
    np.testing.assert_allclose(dec[0], kpts, atol=1e-4)
    np.testing.assert_allclose(scores[0], 1 - sig.mean(axis=1))
    dec2, s2 = codec.decode(target[None])
    np.testing.assert_allclose(dec2[0], kpts, atol=1e-4)
    np.testing.assert_array_equal(s2, 1.0)
    single, s1 = codec.decode(out[0])
    assert single.shape == (17, 2) and s1.shape == (17,)
    with pytest.raises(ValueError):
        codec.decode(np.zeros((1, 17, 3)))


def test_flip_twice_is_identity():
    rng = np.random.default_rng(1)
    out = rng.random((3, 17, 4))
    for width in (None, 192):
        twice = flip_coordinates(flip_coordinates(out, COCO17.flip_index, width), COCO17.flip_index, width)
        np.testing.assert_allclose(twice, out, atol=1e-12)
    codec = CoordinateCodec(INPUT)
    np.testing.assert_allclose(codec.flip(codec.flip(out, COCO17.flip_index), COCO17.flip_index), out, atol=1e-12)


def test_flip_swaps_sigmas_with_joints_without_mirroring_them():
    out = np.zeros((1, 14, 4))
    out[0, 0] = [0.25, 0.5, 0.1, 0.2]  # right ankle
    flipped = flip_coordinates(out, LSP14.flip_index)
    np.testing.assert_allclose(flipped[0, 5], [0.75, 0.5, 0.1, 0.2])  # now the left ankle
    flipped = flip_coordinates(out, LSP14.flip_index, input_width=100)
    np.testing.assert_allclose(flipped[0, 5], [0.74, 0.5, 0.1, 0.2])


def test_prediction_on_mirrored_crop_lands_on_original_joint():
    """cv2.flip maps input pixel p to W - 1 - p. A perfect prediction on the mirrored
    crop, brought back with the codec's flip, decodes exactly to the original joints."""
    codec = CoordinateCodec(INPUT)
    rng = np.random.default_rng(2)
    kpts = np.stack([rng.uniform(0, 191, 17), rng.uniform(0, 255, 17)], axis=1)
    mirrored = kpts.copy()
    mirrored[:, 0] = INPUT[1] - 1 - kpts[:, 0]
    mirrored = mirrored[COCO17.flip_index]
    target, _ = codec.encode(mirrored, np.ones(17))
    sig = rng.uniform(0, 1, (17, 2))
    pred = np.concatenate([target, sig], axis=1)[None]
    back = codec.flip(pred, COCO17.flip_index)
    dec, scores = codec.decode(back)
    np.testing.assert_allclose(dec[0], kpts, atol=1e-4)
    np.testing.assert_allclose(scores[0], 1 - sig[COCO17.flip_index].mean(axis=1))
    # the same with the module function given the width
    back2 = flip_coordinates(pred, COCO17.flip_index, input_width=INPUT[1])
    np.testing.assert_allclose(back2, back)
