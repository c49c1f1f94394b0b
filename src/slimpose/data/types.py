"""The unit every data set yields: one annotated (or detected) person."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PersonInstance:
    image_path: str
    image_id: int
    center: np.ndarray  # (2,) box centre in image pixels
    scale: np.ndarray  # (2,) box width, height in image pixels, padded and at the input's aspect ratio
    keypoints: np.ndarray  # (K, 2) float32 image pixels (zeros where unlabelled)
    visible: np.ndarray  # (K,) float32, 1 = labelled, 0 = not (the target weight)
    area: float = 0.0  # COCO segment area (OKS normaliser); box area where none
    box_score: float = 1.0  # detector score, 1 for ground-truth boxes
    instance_id: int = -1  # annotation id, -1 for detections
    extra: dict = field(default_factory=dict)  # per-data-set fields, e.g. MPII head size
