"""The interface every keypoint codec implements, and the one factory that builds them.

A codec owns everything that depends on what a network outputs (heatmaps, coordinates):
training targets (``encode``), keypoints from outputs (``decode``), the flip test
(``flip``), the output shapes it accepts (``output_shape_problem``) and the fields an
exported model needs to be decoded without slimpose's training code
(``export_metadata`` / :func:`codec_from_metadata`). Callers hold a codec object and
never branch on the output kind. Numpy-only (no torch).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np


class MetadataFieldError(ValueError):
    """A field of an exported model's metadata that is missing, mistyped or out of range."""

    def __init__(self, field: str, problem: str):
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


_REQUIRED = object()


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _get(fields: dict, name: str, default):
    if name in fields:
        return fields[name]
    if default is _REQUIRED:
        raise MetadataFieldError(name, "missing")
    return default


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_number(fields: dict, name: str, default=_REQUIRED, positive: bool = False) -> float:
    value = _get(fields, name, default)
    if not _is_number(value) or (positive and value <= 0):
        raise MetadataFieldError(name, f"expected a finite{' positive' if positive else ''} number, got {_short(value)}")
    return float(value)


def read_numbers(fields: dict, name: str, length: int, positive: bool = False) -> tuple[float, ...]:
    values = _get(fields, name, _REQUIRED)
    if not isinstance(values, list) or len(values) != length or not all(
            _is_number(v) and (v > 0 or not positive) for v in values):
        raise MetadataFieldError(name, f"expected {length} finite{' positive' if positive else ''} numbers, "
                                       f"got {_short(values)}")
    return tuple(float(v) for v in values)


def read_size(fields: dict, name: str, default=_REQUIRED) -> tuple[int, int]:
    """(H, W): two positive integers."""
    value = _get(fields, name, default)
    if not (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise MetadataFieldError(name, f"expected [height, width] as two positive integers, got {_short(value)}")
    return int(value[0]), int(value[1])


def read_text(fields: dict, name: str) -> str:
    value = _get(fields, name, _REQUIRED)
    if not isinstance(value, str) or not value:
        raise MetadataFieldError(name, f"expected a non-empty string, got {_short(value)}")
    return value


def read_choice(fields: dict, name: str, choices: Sequence[str], default=_REQUIRED) -> str:
    value = _get(fields, name, default)
    if not isinstance(value, str) or value not in choices:
        raise MetadataFieldError(name, f"expected one of {', '.join(choices)}, got {_short(value)}")
    return value


def read_bool(fields: dict, name: str, default=_REQUIRED) -> bool:
    value = _get(fields, name, default)
    if not isinstance(value, bool):
        raise MetadataFieldError(name, f"expected true or false, got {_short(value)}")
    return value


class KeypointCodec(ABC):
    """Encode keypoints to network targets and decode network outputs to keypoints.

    A subclass names its ``output_kind``; defining it registers the class with
    :func:`build_codec` and :func:`codec_from_metadata`. ``input_size`` is (H, W);
    keypoints are in input-crop pixels (pixel-index convention).
    """

    output_kind: ClassVar[str]
    instance_ndim: ClassVar[int]  # dimensions of one instance's output (no batch axis)
    _by_kind: ClassVar[dict[str, type[KeypointCodec]]] = {}

    input_size: tuple[int, int]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        KeypointCodec._by_kind[cls.output_kind] = cls

    @classmethod
    @abstractmethod
    def from_options(cls, input_size: tuple[int, int], sigma: float, decode: str, beta: float,
                     **options) -> KeypointCodec:
        """The codec for an experiment's settings; options that do not apply are ignored."""

    @classmethod
    @abstractmethod
    def from_fields(cls, input_size: tuple[int, int], fields: dict, decode: str | None = None) -> KeypointCodec:
        """The codec ``export_metadata`` described; raises :class:`MetadataFieldError`."""

    @abstractmethod
    def encode(self, keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, 2) keypoints, (K,) visibility -> (training target, (K,) weights)."""

    def decode(self, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Network outputs (N, K, ...) -> keypoints (N, K, 2) input-crop px, scores (N, K).

        One instance's outputs (no batch axis) give (K, 2) and (K,).
        """
        out = np.asarray(outputs)
        if out.ndim == self.instance_ndim:
            keypoints, scores = self.decode_batch(out[None])
            return keypoints[0], scores[0]
        return self.decode_batch(out)

    @abstractmethod
    def decode_batch(self, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`decode` of a batch (N, K, ...)."""

    @abstractmethod
    def flip(self, outputs: np.ndarray, flip_index: Sequence[int]) -> np.ndarray:
        """Outputs predicted on mirrored crops, brought back to the original crops."""

    @abstractmethod
    def output_shape_problem(self, shape: Sequence[int], num_keypoints: int) -> str | None:
        """None if a batch of outputs of ``shape`` can be decoded, else what is wrong."""

    def fitted_to(self, output_shape: Sequence[int]) -> KeypointCodec:
        """This codec for a network whose outputs have ``output_shape`` (N, K, ...); codecs
        whose geometry comes from the output (heatmap size) override it."""
        return self

    @abstractmethod
    def export_metadata(self) -> dict:
        """JSON-able fields that rebuild this codec, ``output_kind`` included."""


def output_kinds() -> tuple[str, ...]:
    return tuple(KeypointCodec._by_kind)


def build_codec(output_kind: str, input_size: tuple[int, int], sigma: float = 2.0, decode: str = "argmax",
                beta: float = 160.0, **options) -> KeypointCodec:
    """The codec for a model's output kind; ``input_size`` is (H, W).

    "heatmap" -> :class:`~slimpose.codecs.heatmap.HeatmapCodec` (further options
    ``heatmap_size``, ``refine``, ``flip_shift``); "coordinate" ->
    :class:`~slimpose.codecs.coordinate.CoordinateCodec` (sigma, decode and beta, which
    every experiment config carries, do not apply; other options are an error).
    """
    if output_kind not in KeypointCodec._by_kind:
        raise ValueError(f"unknown output kind {output_kind!r}; use one of {', '.join(output_kinds())}")
    return KeypointCodec._by_kind[output_kind].from_options(input_size, sigma, decode, beta, **options)


def codec_from_metadata(input_size: tuple[int, int], fields: dict, decode: str | None = None) -> KeypointCodec:
    """The codec an exported model describes (``fields`` as ``export_metadata`` wrote them);
    ``decode`` overrides a stored heatmap decoding. Raises :class:`MetadataFieldError`."""
    kind = read_choice(fields, "output_kind", output_kinds())
    return KeypointCodec._by_kind[kind].from_fields(input_size, fields, decode)
