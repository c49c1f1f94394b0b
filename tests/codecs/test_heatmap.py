"""Heatmap codec: encoding, the three decoders, flip test helper."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from slimpose.codecs import (
    HeatmapCodec,
    build_codec,
    dark_kernel_size,
    decode_heatmaps,
    flip_heatmaps,
    gaussian_blur,
    generate_gaussian_heatmaps,
    get_heatmap_maximum,
    refine_dark,
)
from slimpose.keypoints import COCO17, MPII16

INPUT = (256, 192)  # (H, W)


def _random_keypoints(rng, k, margin=16.0, size=INPUT):
    h, w = size
    return np.stack([rng.uniform(margin, w - 1 - margin, k), rng.uniform(margin, h - 1 - margin, k)], axis=1)


def _roundtrip_errors(codec, kpts):
    """Euclidean errors in HEATMAP pixels of encode -> decode."""
    hm, weight = codec.encode(kpts, np.ones(len(kpts)))
    assert weight.all()
    dec, scores = codec.decode(hm[None])
    stride = np.array(codec.stride)
    return np.linalg.norm((dec[0] - kpts) / stride, axis=1), scores[0]


def test_no_torch_import():
    code = "import sys, slimpose.codecs, slimpose.metrics.coco, slimpose.metrics.pck; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_encode_shapes_peak_and_weights():
    codec = HeatmapCodec(INPUT, sigma=2.0)
    assert codec.heatmap_size == (64, 48) and codec.stride == (4.0, 4.0)
    kpts = np.array([[100.0, 60.0], [8.0, 8.0], [50.0, 50.0], [-200.0, 10.0], [191.0, 255.0]])
    vis = np.array([1.0, 2.0, 0.0, 1.0, 1.0])
    hm, w = codec.encode(kpts, vis)
    assert hm.shape == (5, 64, 48) and hm.dtype == np.float32 and w.dtype == np.float32
    np.testing.assert_array_equal(w, [1, 1, 0, 0, 1])
    # peak at (25, 15), value 1 (integer heatmap position)
    assert hm[0].max() == pytest.approx(1.0)
    assert np.unravel_index(hm[0].argmax(), hm[0].shape) == (15, 25)
    # sigma 2 in heatmap px: one pixel away = exp(-1/8)
    assert hm[0, 15, 26] == pytest.approx(np.exp(-1 / 8), rel=1e-6)
    assert not hm[2].any() and not hm[3].any()


def test_encode_outside_rule():
    # 3 sigma window (6 px) fully left of the map: weight 0; partly inside: 1.
    pts = np.array([[-7.5, 10.0], [-5.0, 10.0], [47.0 + 5.5, 10.0], [48.0 + 6.5, 10.0], [10.0, 64.0 + 6.0]])
    hm, w = generate_gaussian_heatmaps((64, 48), pts, np.ones(5), sigma=2.0)
    np.testing.assert_array_equal(w, [0, 1, 1, 0, 0])
    assert hm[1].max() > 0 and not hm[0].any() and not hm[3].any()


def test_nonsquare_stride():
    codec = HeatmapCodec((256, 256), heatmap_size=(64, 32), decode="dark")
    assert codec.stride == (8.0, 4.0)
    kpts = np.array([[130.3, 77.7]])
    hm, _ = codec.encode(kpts, np.ones(1))
    assert hm.shape == (1, 64, 32)
    dec, _ = codec.decode(hm[None])
    np.testing.assert_allclose(dec[0], kpts, atol=0.1 * 8)


def test_roundtrip_argmax_within_half_pixel():
    rng = np.random.default_rng(0)
    err, scores = _roundtrip_errors(HeatmapCodec(INPUT, decode="argmax"), _random_keypoints(rng, 300))
    assert err.max() < 0.5
    assert err.max() <= 0.25 * np.sqrt(2) + 1e-9  # at most a quarter pixel per axis
    assert (scores > 0.9).all()


def test_roundtrip_dark_within_tenth_pixel():
    rng = np.random.default_rng(1)
    err, scores = _roundtrip_errors(HeatmapCodec(INPUT, decode="dark"), _random_keypoints(rng, 300))
    assert err.max() < 0.1
    assert err.mean() < 0.01
    assert (scores > 0.9).all() and (scores <= 1.0).all()


def test_roundtrip_softargmax_beta160():
    """LPN's beta-soft-argmax at beta=160 with the quarter-pixel step (the SPEC decoder).

    On a unit-peak sigma-2 Gaussian, softmax(160 H) has a std of 2/sqrt(160) = 0.16 px,
    so the expectation snaps to the nearest pixel and the result is within argmax+shift's
    quarter-pixel bound, not 0.1 px (see the module docstring of slimpose.codecs.heatmap).
    """
    rng = np.random.default_rng(2)
    kpts = _random_keypoints(rng, 300)
    err, scores = _roundtrip_errors(HeatmapCodec(INPUT, decode="softargmax", beta=160.0), kpts)
    assert err.max() <= 0.25 * np.sqrt(2) + 0.02
    assert (scores > 0.9).all()


def test_roundtrip_softargmax_subpixel_without_quarter_step():
    # A genuinely sub-pixel soft-argmax: moderate beta, no quarter-pixel step.
    rng = np.random.default_rng(3)
    kpts = _random_keypoints(rng, 300)
    err, _ = _roundtrip_errors(HeatmapCodec(INPUT, decode="softargmax", beta=20.0, refine=False), kpts)
    assert err.max() < 0.1


def test_softargmax_beats_plain_argmax():
    rng = np.random.default_rng(4)
    kpts_hm = _random_keypoints(rng, 400, margin=4.0, size=(64, 48))
    hm, _ = generate_gaussian_heatmaps((64, 48), kpts_hm, np.ones(len(kpts_hm)))
    plain, _ = decode_heatmaps(hm[None], "argmax", refine=False)
    shifted, _ = decode_heatmaps(hm[None], "argmax")
    soft160, _ = decode_heatmaps(hm[None], "softargmax", beta=160.0)
    soft20, _ = decode_heatmaps(hm[None], "softargmax", beta=20.0, refine=False)

    def err(c):
        return np.linalg.norm(c[0] - kpts_hm, axis=1).mean()

    assert err(soft160) < err(plain)
    assert err(soft20) < err(shifted) < err(plain)


def test_softargmax_score_at_rounded_location():
    hm = np.zeros((1, 1, 64, 48))
    hm[0, 0, 20, 10] = 0.8
    hm[0, 0, 20, 11] = 0.6
    coords, scores = decode_heatmaps(hm, "softargmax", beta=160.0)
    assert scores[0, 0] == pytest.approx(0.8)
    # expectation ~10, then +0.25 toward the higher (right) neighbour
    assert coords[0, 0, 0] == pytest.approx(10.25, abs=1e-6)
    assert coords[0, 0, 1] == pytest.approx(20.0, abs=1e-6)


def test_argmax_quarter_shift_direction_and_border():
    hm = np.zeros((1, 2, 8, 8))
    hm[0, 0, 4, 4] = 1.0
    hm[0, 0, 4, 3] = 0.5  # left neighbour higher -> -0.25 in x
    hm[0, 0, 5, 4] = 0.5  # lower neighbour higher -> +0.25 in y
    hm[0, 1, 0, 7] = 1.0  # corner: no neighbours on both sides -> no shift
    hm[0, 1, 0, 6] = 0.5
    coords, scores = decode_heatmaps(hm, "argmax")
    np.testing.assert_allclose(coords[0, 0], [3.75, 4.25])
    np.testing.assert_allclose(coords[0, 1], [7.0, 0.0])
    np.testing.assert_allclose(scores[0], [1.0, 1.0])


def test_decode_batch_and_single():
    rng = np.random.default_rng(5)
    codec = HeatmapCodec(INPUT, decode="dark")
    kp = _random_keypoints(rng, 17)
    hm, _ = codec.encode(kp, np.ones(17))
    batch = np.stack([hm, hm[::-1]])
    dec, sc = codec.decode(batch)
    assert dec.shape == (2, 17, 2) and sc.shape == (2, 17)
    np.testing.assert_allclose(dec[1], kp[::-1], atol=0.4)
    single, s1 = codec.decode(hm)
    assert single.shape == (17, 2) and s1.shape == (17,)
    with pytest.raises(ValueError):
        HeatmapCodec(INPUT, decode="median")


def test_flip_twice_is_identity():
    rng = np.random.default_rng(6)
    hm = rng.random((2, 17, 64, 48)).astype(np.float32)
    idx = COCO17.flip_index
    np.testing.assert_array_equal(flip_heatmaps(flip_heatmaps(hm, idx, shift=False), idx, shift=False), hm)
    # With HRNet's one-pixel shift, column j maps to w - j: an involution except column 0.
    twice = flip_heatmaps(flip_heatmaps(hm, idx), idx)
    np.testing.assert_array_equal(twice[..., 1:], hm[..., 1:])


def test_flip_channels_swapped():
    hm = np.zeros((1, 16, 4, 6))
    hm[0, 0, 1, 1] = 1.0  # right ankle
    out = flip_heatmaps(hm, MPII16.flip_index, shift=False)
    assert out[0, 5, 1, 4] == 1.0 and out[0, 0].sum() == 0  # becomes left ankle, mirrored


@pytest.mark.parametrize("layout", [COCO17, MPII16])
def test_flipped_heatmap_of_mirrored_keypoint_decodes_to_original(layout):
    """A crop mirrored with cv2.flip sends input pixel p to W - 1 - p. The network's output
    on it, brought back by flip_heatmaps (HRNet shift), decodes to the original joint,
    up to HRNet's known residual of exactly +1 input pixel in x."""
    rng = np.random.default_rng(7)
    codec = HeatmapCodec(INPUT, decode="dark")
    k = layout.num_keypoints
    kpts = _random_keypoints(rng, k, margin=24.0)
    mirrored = kpts.copy()
    mirrored[:, 0] = INPUT[1] - 1 - kpts[:, 0]
    mirrored = mirrored[layout.flip_index]  # left and right swap names in the mirror
    hm, _ = codec.encode(mirrored, np.ones(k))
    back, _ = codec.decode(flip_heatmaps(hm[None], layout.flip_index))
    np.testing.assert_allclose(back[0, :, 1], kpts[:, 1], atol=0.1)
    np.testing.assert_allclose(back[0, :, 0], kpts[:, 0] + 1.0, atol=0.1)
    # Averaging with the unflipped heatmaps (the flip test) lands within half a pixel.
    orig, _ = codec.encode(kpts, np.ones(k))
    avg = 0.5 * (orig[None] + flip_heatmaps(hm[None], layout.flip_index))
    dec, _ = codec.decode(avg)
    assert np.abs(dec[0] - kpts).max() < 0.6


def test_build_codec():
    hc = build_codec("heatmap", (256, 192), sigma=3.0, decode="softargmax", beta=100.0)
    assert isinstance(hc, HeatmapCodec) and hc.output_kind == "heatmap"
    assert hc.sigma == 3.0 and hc.decode_method == "softargmax" and hc.beta == 100.0
    assert hc.heatmap_size == (64, 48)
    cc = build_codec("coordinate", (256, 256))
    assert cc.output_kind == "coordinate" and cc.input_size == (256, 256)
    with pytest.raises(ValueError):
        build_codec("mesh", (256, 192))


@pytest.mark.parametrize("sigma, shape", [(1.5, (3, 14, 32, 24)), (2.0, (2, 17, 64, 48)), (3.0, (1, 5, 16, 12))])
def test_dark_on_blurred_windows_matches_dark_on_the_whole_blurred_map(sigma, shape):
    """DARK's formula (MMPose's refine_keypoints_dark) on the whole blurred log-heatmap."""
    rng = np.random.default_rng(0)
    hm = rng.random(shape) ** 8 + 0.01 * rng.random(shape)
    coords, _ = get_heatmap_maximum(hm)
    lg = np.log(np.maximum(gaussian_blur(hm, dark_kernel_size(sigma)), 1e-10))
    expected = coords.copy()
    for n, k in np.ndindex(*shape[:2]):
        x, y = coords[n, k].astype(int)
        if not (1 < x < shape[3] - 2 and 1 < y < shape[2] - 2):
            continue
        m = lg[n, k]
        grad = 0.5 * np.array([m[y, x + 1] - m[y, x - 1], m[y + 1, x] - m[y - 1, x]])
        dxx = 0.25 * (m[y, x + 2] - 2 * m[y, x] + m[y, x - 2])
        dyy = 0.25 * (m[y + 2, x] - 2 * m[y, x] + m[y - 2, x])
        dxy = 0.25 * (m[y + 1, x + 1] - m[y - 1, x + 1] - m[y + 1, x - 1] + m[y - 1, x - 1])
        expected[n, k] -= np.linalg.solve(np.array([[dxx, dxy], [dxy, dyy]]), grad)
    assert np.allclose(refine_dark(hm, coords, sigma), expected, atol=1e-8)
