"""slimpose.geometry: the affine crop and its inverse."""

from __future__ import annotations

import numpy as np
import pytest

from slimpose.geometry import crop_to_image, get_affine_transform, warp_points


@pytest.mark.parametrize("rotation", [0.0, 30.0, -75.0, 180.0])
def test_round_trip_image_crop_image(rotation):
    rng = np.random.default_rng(1)
    input_size = (256, 192)
    centers = rng.uniform(50, 600, (5, 2))
    scales = np.stack([rng.uniform(30, 400, 5), np.zeros(5)], axis=1)
    scales[:, 1] = scales[:, 0] / 0.75
    rotations = np.full(5, rotation) + rng.uniform(-5, 5, 5)
    pts = rng.uniform(0, 640, (5, 17, 2))
    crop = np.stack([warp_points(pts[i], get_affine_transform(centers[i], scales[i], rotations[i], (192, 256)))
                     for i in range(5)])
    back = crop_to_image(crop, centers, scales, input_size, rotations)
    assert np.abs(back - pts).max() < 0.01
    # the inverse matrix agrees
    inv = get_affine_transform(centers[0], scales[0], rotations[0], (192, 256), inverse=True)
    assert np.abs(warp_points(crop[0], inv) - pts[0]).max() < 1e-6


def test_affine_maps_box_centre_and_width():
    m = get_affine_transform([100, 80], [60, 80], 0.0, (192, 256))
    np.testing.assert_allclose(warp_points([100, 80], m), [96, 128], atol=1e-9)
    np.testing.assert_allclose(warp_points([70, 40], m), [0, 0], atol=1e-9)  # box corner → crop corner
    # positive rotation: a point above the centre moves (image y down) as cv2's convention gives
    m = get_affine_transform([100, 80], [60, 80], 90.0, (192, 256))
    q = warp_points([100, 60], m)  # 20 px above the centre
    assert np.allclose(np.abs(q - [96, 128]).max(), 20 * 192 / 60, atol=1e-6)
    assert crop_to_image(np.zeros((1, 0, 2)), [[0, 0]], [[1, 1]], (256, 192)).shape == (1, 0, 2)
