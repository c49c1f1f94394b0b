"""KeypointCodec: one interface, built from settings or from an export's metadata, and the
shared predict -> flip -> decode -> image path."""

from __future__ import annotations

import numpy as np
import pytest

from slimpose.codecs import (
    CoordinateCodec,
    HeatmapCodec,
    KeypointCodec,
    MetadataFieldError,
    OUTPUT_KINDS,
    build_codec,
    codec_from_metadata,
    predict_keypoints,
    predict_outputs,
)
from slimpose.geometry import crop_to_image
from slimpose.keypoints import COCO17

INPUT = (64, 48)


def test_every_kind_is_a_keypoint_codec():
    assert set(OUTPUT_KINDS) == {"heatmap", "coordinate"}
    for kind in OUTPUT_KINDS:
        codec = build_codec(kind, INPUT, sigma=2.0, decode="dark", beta=100.0)
        assert isinstance(codec, KeypointCodec) and codec.output_kind == kind and codec.input_size == INPUT
    with pytest.raises(ValueError, match="unknown output kind 'mask'"):
        build_codec("mask", INPUT)
    with pytest.raises(TypeError, match="heatmap_size"):
        build_codec("coordinate", INPUT, heatmap_size=(16, 12))


@pytest.mark.parametrize("codec", [
    HeatmapCodec(INPUT, heatmap_size=(32, 24), sigma=1.5, decode="softargmax", beta=40.0, refine=False,
                 flip_shift=False),
    CoordinateCodec(INPUT),
], ids=["heatmap", "coordinate"])
def test_metadata_round_trip(codec):
    again = codec_from_metadata(INPUT, codec.export_metadata())
    assert type(again) is type(codec) and again.export_metadata() == codec.export_metadata()


def test_decode_override_and_bad_fields():
    fields = HeatmapCodec(INPUT).export_metadata()
    assert codec_from_metadata(INPUT, fields, decode="dark").decode_method == "dark"
    for change, field in (({"decode": "nearest"}, "decode"), ({"sigma": "2"}, "sigma"),
                          ({"heatmap_size": [16]}, "heatmap_size"), ({"flip_shift": 1}, "flip_shift"),
                          ({"output_kind": None}, "output_kind")):
        with pytest.raises(MetadataFieldError) as err:
            codec_from_metadata(INPUT, {**fields, **change})
        assert err.value.field == field


def test_fitted_to_takes_the_heatmap_size_from_the_output():
    codec = HeatmapCodec(INPUT).fitted_to((2, 17, 32, 24))
    assert codec.heatmap_size == (32, 24) and codec.stride == (2.0, 2.0)
    assert codec.output_shape_problem((2, 17, 32, 24), 17) is None
    assert "17, 32, 24" in codec.output_shape_problem((2, 17, 16, 12), 17)
    coord = CoordinateCodec(INPUT)
    assert coord.fitted_to((1, 17, 4)) is coord and coord.output_shape_problem((1, 14, 4), 17)


@pytest.mark.parametrize("codec", [HeatmapCodec(INPUT), CoordinateCodec(INPUT)], ids=["heatmap", "coordinate"])
def test_predict_keypoints_is_flip_average_then_decode_then_image_coordinates(codec):
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((3, 17))
    shape = (17, 16, 12) if codec.output_kind == "heatmap" else (17, 4)

    def forward(x):  # a deterministic function of the crop that is not mirror-symmetric
        feat = np.einsum("nchw,ck->nk", x[..., :, : x.shape[-1] // 2], weights)
        return np.tanh(feat[..., None] * np.linspace(0.1, 1.0, int(np.prod(shape[1:])))).reshape(-1, *shape)

    crops = rng.standard_normal((2, 3, *INPUT)).astype(np.float32)
    centers, scales, rotations = rng.uniform(50, 100, (2, 2)), rng.uniform(80, 120, (2, 2)), np.array([0.0, 30.0])
    flipped = codec.flip(forward(crops[..., ::-1]), COCO17.flip_index)
    expected_out = 0.5 * (forward(crops) + flipped)
    np.testing.assert_allclose(predict_outputs(forward, crops, codec, COCO17.flip_index), expected_out)
    kpts, scores = predict_keypoints(forward, crops, codec, centers, scales, COCO17.flip_index, rotations)
    ref_kpts, ref_scores = codec.decode(expected_out)
    np.testing.assert_allclose(kpts, crop_to_image(ref_kpts, centers, scales, INPUT, rotations), atol=1e-4)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)
    assert kpts.dtype == scores.dtype == np.float32
    np.testing.assert_array_equal(predict_outputs(forward, crops, codec), forward(crops))
