"""Keypoint codecs: training targets from keypoints and keypoints from network outputs.

Numpy-only (no torch import): the torch-free deploy runtime reuses these.
"""

from __future__ import annotations

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

OUTPUT_KINDS = ("heatmap", "coordinate")


def build_codec(
    output_kind: str,
    input_size: tuple[int, int],
    sigma: float = 2.0,
    decode: str = "argmax",
    beta: float = 160.0,
    **kwargs,
) -> HeatmapCodec | CoordinateCodec:
    """The codec for a model's output kind. ``input_size`` is (H, W).

    "heatmap" -> :class:`HeatmapCodec` (extra keyword args ``heatmap_size``, ``refine``);
    "coordinate" -> :class:`CoordinateCodec` (sigma, decode and beta do not apply).
    """
    if output_kind == "heatmap":
        return HeatmapCodec(input_size=input_size, sigma=sigma, decode=decode, beta=beta, **kwargs)
    if output_kind == "coordinate":
        if kwargs:
            raise TypeError(f"CoordinateCodec takes no options {sorted(kwargs)}")
        return CoordinateCodec(input_size=input_size)
    raise ValueError(f"unknown output kind {output_kind!r}; use one of {', '.join(OUTPUT_KINDS)}")


__all__ = [
    "CoordinateCodec",
    "DECODE_METHODS",
    "HeatmapCodec",
    "OUTPUT_KINDS",
    "build_codec",
    "dark_kernel_size",
    "decode_heatmaps",
    "flip_coordinates",
    "flip_heatmaps",
    "gaussian_blur",
    "generate_gaussian_heatmaps",
    "get_heatmap_maximum",
    "refine_dark",
    "refine_quarter_offset",
    "soft_argmax",
]
