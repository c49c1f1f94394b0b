"""PCK metrics: MPII PCKh (HRNet's evaluate), LSP PCK with the torso normaliser, and
:func:`layout_pck` for any layout: its torso if it names one, else the box size.

Numpy only. All values are fractions in [0, 1] (multiply by 100 for the percentages
papers print); NaN where nothing was labelled.
"""

from __future__ import annotations

import numpy as np

from slimpose.keypoints import LSP14, MPII16, KeypointLayout

SC_BIAS = 0.6  # HRNet / MMPose: head size = 0.6 x head box diagonal

# Joints HRNet leaves out of the MPII mean (pelvis and thorax).
_MPII_EXCLUDED = ("pelvis", "thorax")


def _as_arrays(pred, gt, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    m = np.asarray(mask).astype(bool)
    if p.ndim != 3 or p.shape[2] < 2:
        raise ValueError(f"pred must be (N, K, 2), got shape {p.shape}")
    if g.shape[:2] != p.shape[:2] or m.shape != p.shape[:2]:
        raise ValueError(f"shape mismatch: pred {p.shape}, gt {g.shape}, mask {m.shape}")
    return p[..., :2], g[..., :2], m


def keypoint_pck_accuracy(
    pred: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray,
    thr: float,
    norm: np.ndarray,
    inclusive: bool = False,
) -> tuple[np.ndarray, float, np.ndarray]:
    """PCK of ``pred`` against ``gt`` (both (N, K, 2)) over labelled joints ``mask``.

    A joint is correct when ``distance / norm[n] < thr`` (``<=`` with ``inclusive``, the
    HRNet MPII rule). Instances with ``norm <= 0`` (or not finite) are left out.
    Returns ``(per_joint (K,), mean, counts (K,))``: per-joint accuracy (NaN for a joint
    with no labelled instance), the mean over all labelled (instance, joint) pairs
    (NaN if there are none), and the number of such pairs per joint.
    """
    p, g, m = _as_arrays(pred, gt, mask)
    nrm = np.asarray(norm, dtype=np.float64).reshape(-1)
    hit, valid = joint_hits(p, g, m, thr, nrm, inclusive)
    counts = valid.sum(axis=0)
    correct = hit.sum(axis=0)
    per_joint = np.full(p.shape[1], np.nan)
    np.divide(correct, counts, out=per_joint, where=counts > 0)
    total = int(counts.sum())
    mean = float(correct.sum() / total) if total > 0 else float("nan")
    return per_joint, mean, counts


def joint_hits(p: np.ndarray, g: np.ndarray, m: np.ndarray, thr: float, nrm: np.ndarray,
               inclusive: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) masks for predictions ``p`` and ground truth ``g`` (N, K, 2), labelled joints
    ``m`` (N, K) and normalisers ``nrm`` (N,): which predictions are within ``thr``
    normalisers of their ground truth (``<=`` with ``inclusive``), and which (person,
    joint) pairs count (labelled, finite, with a usable normaliser)."""
    if nrm.shape[0] != p.shape[0]:
        raise ValueError(f"norm has {nrm.shape[0]} values for {p.shape[0]} instances")
    good_norm = np.isfinite(nrm) & (nrm > 0)
    # Non-finite predictions of labelled joints count as wrong, not as unlabelled.
    valid = m & good_norm[:, None] & np.isfinite(g).all(-1)
    dist = np.linalg.norm(p - g, axis=-1) / np.where(good_norm, nrm, 1.0)[:, None]
    with np.errstate(invalid="ignore"):
        hit = (dist <= thr) if inclusive else (dist < thr)
    return hit & valid & np.isfinite(dist), valid


def _mean_defined(values: np.ndarray) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _pooled(per_joint: np.ndarray, counts: np.ndarray, joints: list[int]) -> float:
    c = counts[joints].astype(np.float64)
    if c.sum() == 0:
        return float("nan")
    return float(np.nansum(per_joint[joints] * c) / c.sum())


def _group_values(layout: KeypointLayout, per_joint: np.ndarray, head_top_only: bool) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, joints in layout.groups.items():
        key = name[:1].upper() + name[1:]
        if head_top_only and name == "head" and "head_top" in layout.names:
            # HRNet's MPII "Head" is the head-top joint alone (upper neck only enters the mean).
            out[key] = float(per_joint[layout.names.index("head_top")])
        else:
            out[key] = _mean_defined(per_joint[list(joints)])
    return out


def mpii_head_sizes(headboxes: np.ndarray) -> np.ndarray:
    """HRNet's PCKh normaliser from head boxes (N, 2, 2) = [[x1, y1], [x2, y2]] per person."""
    hb = np.asarray(headboxes, dtype=np.float64)
    if hb.ndim != 3 or hb.shape[1:] != (2, 2):
        raise ValueError(f"headboxes must be (N, 2, 2), got shape {hb.shape}")
    return np.linalg.norm(hb[:, 1, :] - hb[:, 0, :], axis=-1) * SC_BIAS


def mpii_pckh(
    pred: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray,
    head_sizes: np.ndarray,
    layout: KeypointLayout = MPII16,
) -> dict[str, float]:
    """MPII PCKh as HRNet's ``MPIIDataset.evaluate`` computes it.

    ``head_sizes`` (N,) are the normaliser already (see :func:`mpii_head_sizes`). A joint
    is correct when its error is <= 0.5 (0.1) head sizes. "PCKh" and "PCKh@0.1" are the
    joint-count-weighted means over all joints except pelvis and thorax (= pooled over
    the labelled pairs of the other joints); "Head" is head top (HRNet), the other
    groups the plain mean of their left and right joints, at 0.5.
    """
    per05, _, counts = keypoint_pck_accuracy(pred, gt, mask, 0.5, head_sizes, inclusive=True)
    per01, _, _ = keypoint_pck_accuracy(pred, gt, mask, 0.1, head_sizes, inclusive=True)
    used = [j for j, n in enumerate(layout.names) if n not in _MPII_EXCLUDED]
    out = _group_values(layout, per05, head_top_only=True)
    out["PCKh"] = _pooled(per05, counts, used)
    out["PCKh@0.1"] = _pooled(per01, counts, used)
    return out


def lsp_pck(
    pred: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray,
    layout: KeypointLayout = LSP14,
    thr: float = 0.2,
) -> dict[str, float]:
    """PCK with the torso normaliser: ||gt[torso[0]] - gt[torso[1]]|| (LSP: left shoulder
    to right hip), from the ground truth.

    A person whose torso joints are not both labelled (or coincide) has no normaliser and
    is left out. "PCK" is the mean over all labelled (person, joint) pairs at ``thr``,
    "PCK@0.1" the same at 0.1, the groups (e.g. "Head", "Shoulder", ...) the plain mean of
    their joints' PCK at ``thr``. Works for any layout with ``torso`` set.
    """
    if not layout.torso:
        raise ValueError(f"layout {layout.name!r} has no torso joints for PCK normalisation")
    p, g, m = _as_arrays(pred, gt, mask)
    return _pck_summary(p, g, m, layout, thr, torso_sizes(g, m, layout.torso))


def _pck_summary(pred, gt, mask, layout: KeypointLayout, thr: float, norm: np.ndarray) -> dict[str, float]:
    """The layout's groups at ``thr``, "PCK" at ``thr``, "PCK@0.1" and "Inversion" at
    ``thr``, all under ``norm``."""
    per, mean, _ = keypoint_pck_accuracy(pred, gt, mask, thr, norm)
    _, mean01, _ = keypoint_pck_accuracy(pred, gt, mask, 0.1, norm)
    out = _group_values(layout, per, head_top_only=False)
    out["PCK"] = mean
    out["PCK@0.1"] = mean01
    out["Inversion"] = inversion_rate(pred, gt, mask, layout.flip_index, thr, norm)
    return out


def own_and_partner_hits(p: np.ndarray, g: np.ndarray, m: np.ndarray, flip_index, thr: float, nrm: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, K) masks for arrays as :func:`joint_hits` takes them: which predictions hit their
    own joint's label, which hit their left/right partner's (``flip_index``) label, and
    which (person, joint) pairs count (as :func:`joint_hits`; a partner hit only counts on
    such a pair)."""
    index = list(flip_index)
    if len(index) != p.shape[1]:
        raise ValueError(f"flip_index has {len(index)} entries for {p.shape[1]} joints")
    own, counted = joint_hits(p, g, m, thr, nrm)
    partner, _ = joint_hits(p, g[:, index], m[:, index], thr, nrm)
    return own, partner & counted, counted


def inversion_rate(pred, gt, mask, flip_index, thr: float, norm: np.ndarray) -> float:
    """Share of the labelled (person, joint) pairs PCK counts that are left/right
    confusions: the prediction misses its own joint but lies within ``thr`` of its mirror
    partner's labelled one (Ronchi and Perona's "inversion"). On the same base as PCK, so
    PCK + inversions + other misses make 1; joints without a partner are never inverted."""
    p, g, m = _as_arrays(pred, gt, mask)
    nrm = np.asarray(norm, dtype=np.float64).reshape(-1)
    own, partner, counted = own_and_partner_hits(p, g, m, flip_index, thr, nrm)
    if not counted.any():
        return float("nan")
    paired = np.array(list(flip_index)) != np.arange(p.shape[1])
    return float((~own & partner & paired).sum() / counted.sum())


def box_sizes(boxes_xywh: np.ndarray) -> np.ndarray:
    """The box-size PCK normaliser: each box's longer side, max(w, h) (MMPose's ``bbox``
    normalisation), from boxes (N, 4) as [x, y, w, h]."""
    b = np.asarray(boxes_xywh, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4) [x, y, w, h], got shape {b.shape}")
    return np.maximum(b[:, 2], b[:, 3])


def torso_sizes(gt: np.ndarray, mask: np.ndarray, torso: tuple[int, int]) -> np.ndarray:
    """||gt[torso[0]] - gt[torso[1]]|| per person; 0 (no normaliser) where either is unlabelled."""
    g = np.asarray(gt, dtype=np.float64)[..., :2]
    m = np.asarray(mask).astype(bool)
    a, b = torso
    size = np.linalg.norm(g[:, a] - g[:, b], axis=-1)
    return np.where(m[:, a] & m[:, b] & np.isfinite(size), size, 0.0)


def layout_pck(
    pred: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray,
    layout: KeypointLayout,
    boxes_xywh: np.ndarray | None = None,
    thr: float = 0.2,
) -> dict[str, float]:
    """PCK for any layout: normalised by the layout's ``torso`` pair where it has one
    (:func:`torso_sizes`), else by the person boxes' longer side (:func:`box_sizes`,
    ``boxes_xywh`` then required). "PCK" at ``thr``, "PCK@0.1" at 0.1, pooled over the
    labelled (person, joint) pairs, and the layout's groups as :func:`lsp_pck` gives them."""
    if layout.torso:
        return lsp_pck(pred, gt, mask, layout, thr=thr)
    if boxes_xywh is None:
        raise ValueError(f"layout {layout.name!r} names no torso joints: PCK needs the person boxes")
    return _pck_summary(pred, gt, mask, layout, thr, box_sizes(boxes_xywh))
