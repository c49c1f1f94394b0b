"""Data sources: the reader of a config's data set (``build_source``).

The readers (:class:`~slimpose.data.coco.CocoSource`, :class:`~slimpose.data.mpii.MpiiSource`,
:class:`~slimpose.data.lsp.LspSource`) build on :mod:`slimpose.data.base`; this module picks
one by ``type`` and is imported by none of them.
"""

from __future__ import annotations

from slimpose.data.base import DataSource
from slimpose.data.coco import CocoSource
from slimpose.data.lsp import LspSource
from slimpose.data.mpii import MpiiSource
from slimpose.errors import DataError
from slimpose.keypoints import KeypointLayout


def build_source(ds, layout: KeypointLayout, input_size, train: bool) -> DataSource:
    """Read the data set described by a ``DatasetConfig``; ``input_size`` is (H, W).

    ``ds.type``: ``coco`` (any COCO-format keypoint JSON, also the synthetic data),
    ``mpii`` (HRNet/MMPose JSON) or ``lsp`` (LSP / LSPET ``joints.mat``).
    """
    aspect_ratio = float(input_size[1]) / float(input_size[0])
    kind = (ds.type or "").lower()
    if kind in ("coco", "synthetic"):
        src: DataSource = CocoSource.from_config(ds, layout, aspect_ratio, train)
    elif kind == "mpii":
        src = MpiiSource.from_config(ds, layout, aspect_ratio, train)
    elif kind in ("lsp", "lspet"):
        src = LspSource.from_config(ds, layout, aspect_ratio, train)
    else:
        raise DataError(ds.ann_file or "config", "type", f"unknown data set type {ds.type!r}; known: coco, mpii, lsp")
    src.truncate(ds.limit)
    return src
