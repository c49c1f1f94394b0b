"""Find the people whose left and right labels look exchanged, with a trained model as the
judge (``slimpose audit``).

The model predicts each person of a data set from its own box (the crops ``slimpose eval``
scores, the flip test on); a limb whose labels its prediction matches far better mirrored
than as labelled is listed (:func:`slimpose.metrics.sides.mirrored_limbs`). The labels are
only read: the report says where to look, and the person who labelled them decides.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slimpose.data.base import DataSource
from slimpose.data.sources import build_source
from slimpose.deploy.evaluate import checked_estimator, predict_instances
from slimpose.errors import ConfigError, DataError
from slimpose.keypoints import KeypointLayout
from slimpose.metrics.pck import box_sizes, torso_sizes
from slimpose.metrics.sides import limb_groups, mirrored_limbs


def person_norms(source: DataSource, layout: KeypointLayout, gt: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each person's PCK normaliser (N,) from its labels ``gt`` (N, K, 2) and ``mask``
    (N, K): the torso where the layout names one, else the longer side of the person's
    box (of its labelled joints where the data gives no box)."""
    if layout.torso:
        return torso_sizes(gt, mask, layout.torso)
    boxes = []
    for inst, xy, m in zip(source.instances, gt, mask):
        pts = xy[m] if m.any() else np.zeros((1, 2))
        boxes.append(inst.extra.get("bbox", np.r_[pts.min(0), pts.max(0) - pts.min(0)]))
    return box_sizes(np.array(boxes, dtype=np.float64))


def audit_sides(onnx_path: str | Path, dataset, layout: str | KeypointLayout | None, *, flip: bool = True,
                threads: int | None = None, thr: float = 0.2, margin: int = 2, min_hits: int = 3) -> dict:
    """The report of :mod:`slimpose.deploy.audit` for ``dataset`` (a ``DatasetConfig``),
    whose layout ``layout`` must be the ONNX model's: how many people were read and could
    be checked (those with a PCK normaliser), how many look mirrored per limb, and one
    entry per mirrored limb (image, image and annotation ids, hits as labelled and
    mirrored), in the data set's order."""
    estimator, layout = checked_estimator(onnx_path, layout, threads)
    if not limb_groups(layout):
        raise ConfigError(f"data.layout: {layout.name!r} pairs no left and right joints; there are no sides to audit")
    source = build_source(dataset, layout, estimator.input_size, train=False)
    if not source.instances:
        raise DataError(dataset.ann_file, "annotations", "no labelled people to audit")
    pred, _ = predict_instances(estimator, source, flip)
    gt = np.stack([inst.keypoints for inst in source.instances])
    mask = np.stack([inst.visible > 0 for inst in source.instances])
    norm = person_norms(source, layout, gt, mask)
    limbs = mirrored_limbs(pred, gt, mask, layout, norm, thr, margin, min_hits)
    flagged = [{"image": inst.image_path, "image_id": inst.image_id, "instance_id": inst.instance_id, "limb": name,
                "hits_as_labelled": int(own[i]), "hits_mirrored": int(swapped[i])}
               for i, inst in enumerate(source.instances)
               for name, (looks_mirrored, own, swapped) in limbs.items() if looks_mirrored[i]]
    return {"model": str(onnx_path), "data": str(dataset.ann_file), "people": len(source.instances),
            "checked": int((norm > 0).sum()), "flip_test": flip, "thr": thr, "margin": margin, "min_hits": min_hits,
            "mirrored": {name: int(looks_mirrored.sum()) for name, (looks_mirrored, _, _) in limbs.items()},
            "flagged": flagged}
