"""Training heads that own their losses (MMPose's heads): a model's registry entry names
its head (``ModelInfo.head``), ``model.head`` in the config holds the head's options."""

from __future__ import annotations

from slimpose.heads.base import Head
from slimpose.heads.heatmap import HeatmapHead
from slimpose.heads.pooled_rle import PooledRLEHead
from slimpose.heads.rle import RLEHead

HEADS: dict[str, type[Head]] = {"heatmap": HeatmapHead, "rle": RLEHead, "pooled_rle": PooledRLEHead}


def build_head(kind: str, options: dict | None = None, heatmap_sigma: float = 2.0) -> Head:
    """The head ``kind`` (a model's ``ModelInfo.head``) with ``model.head``'s options."""
    return HEADS[kind](options, heatmap_sigma)
