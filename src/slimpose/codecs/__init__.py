"""Keypoint codecs: training targets from keypoints and keypoints from network outputs.

Every codec implements :class:`KeypointCodec`; :func:`build_codec` (from settings) and
:func:`codec_from_metadata` (from an exported file) build them, and
:func:`predict_keypoints` is the one predict -> flip -> decode -> image-coordinates path
of evaluation and of the deploy runtime. Numpy-only (no torch import).
"""

from __future__ import annotations

from .base import KeypointCodec, MetadataFieldError, build_codec, codec_from_metadata, output_kinds
from .coordinate import CoordinateCodec, flip_coordinates
from .heatmap import (
    DECODE_METHODS,
    HeatmapCodec,
    dark_kernel_size,
    decode_heatmaps,
    flip_heatmaps,
    gaussian_blur,
    generate_gaussian_heatmaps,
    get_heatmap_maximum,
    refine_dark,
    refine_quarter_offset,
    soft_argmax,
)
from .predict import predict_keypoints, predict_outputs

OUTPUT_KINDS = output_kinds()

__all__ = [
    "CoordinateCodec",
    "DECODE_METHODS",
    "HeatmapCodec",
    "KeypointCodec",
    "MetadataFieldError",
    "OUTPUT_KINDS",
    "build_codec",
    "codec_from_metadata",
    "dark_kernel_size",
    "decode_heatmaps",
    "flip_coordinates",
    "flip_heatmaps",
    "gaussian_blur",
    "generate_gaussian_heatmaps",
    "get_heatmap_maximum",
    "predict_keypoints",
    "predict_outputs",
    "refine_dark",
    "refine_quarter_offset",
    "soft_argmax",
]
