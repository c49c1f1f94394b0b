"""COCO keypoint evaluation: OKS, OKS-NMS, detection-mode rescoring, pycocotools AP.

Numpy + pycocotools only (no torch). The rescoring and NMS follow HRNet / MMPose
(SPEC section 2): each person's score becomes box score x mean of its keypoint scores
above ``RESCORE_KPT_THR`` (0.2; 0 if none is above it: :func:`person_scores`), then greedy
OKS-NMS at 0.9 per image, then COCOeval with ``iouType="keypoints"``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import numbers
import reprlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slimpose.errors import ConfigError, DataError
from slimpose.keypoints import COCO17, DEFAULT_OKS_SIGMA, non_finite_joints

# pycocotools' COCOeval.Params.kpt_oks_sigmas, defined once with the COCO layout.
COCO_SIGMAS = COCO17.sigmas_array()

STAT_NAMES = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")

# COCO's rescoring (SPEC section 2): keypoints scored above this count towards a person's score.
RESCORE_KPT_THR = 0.2


def person_scores(box_scores, keypoint_scores, kpt_score_thr: float = RESCORE_KPT_THR) -> np.ndarray:
    """COCO's person score, (N,) float64: box score x mean of the keypoint scores (N, K)
    above ``kpt_score_thr`` (0 for a person with none above it). HRNet / MMPose's
    rescoring; the evaluation (:func:`coco_topdown_results`) and the inference pipeline
    both rank people with it."""
    ks = np.asarray(keypoint_scores, dtype=np.float64)
    bs = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    if ks.ndim != 2 or ks.shape[0] != bs.shape[0]:
        raise ValueError(f"expected keypoint scores (N, K) for {bs.shape[0]} box scores, got shape {ks.shape}")
    confident = ks > kpt_score_thr
    n = confident.sum(axis=1)
    mean = np.where(n > 0, np.where(confident, ks, 0.0).sum(axis=1) / np.maximum(n, 1), 0.0)
    return bs * mean


# --------------------------------------------------------------------------- OKS and NMS


def oks_iou(
    kpt: np.ndarray,
    kpts: np.ndarray,
    area: float,
    areas: np.ndarray,
    sigmas: np.ndarray,
    vis_thr: float | None = None,
) -> np.ndarray:
    """OKS between one pose ``kpt`` (K, 3) and each of ``kpts`` (M, K, 3).

    HRNet / MMPose's NMS similarity: the scale is the mean of the two areas, and with
    ``vis_thr`` only joints whose score exceeds it in both poses count.
    """
    g = np.asarray(kpt, dtype=np.float64).reshape(-1, 3)
    d = np.asarray(kpts, dtype=np.float64).reshape(-1, g.shape[0], 3)
    a_d = np.asarray(areas, dtype=np.float64).reshape(-1)
    sig = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if sig.shape[0] != g.shape[0]:
        raise ValueError(f"{sig.shape[0]} sigmas for {g.shape[0]} keypoints")
    if d.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    var = (sig * 2.0) ** 2
    dx = d[:, :, 0] - g[None, :, 0]
    dy = d[:, :, 1] - g[None, :, 1]
    scale = (float(area) + a_d)[:, None] / 2.0 + np.spacing(1)
    e = (dx**2 + dy**2) / var[None] / scale / 2.0
    if vis_thr is None:
        return np.exp(-e).mean(axis=1)
    use = (g[None, :, 2] > vis_thr) & (d[:, :, 2] > vis_thr)
    n = use.sum(axis=1)
    total = np.where(use, np.exp(-e), 0.0).sum(axis=1)
    return np.where(n > 0, total / np.maximum(n, 1), 0.0)


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    sigmas: np.ndarray,
    thr: float = 0.9,
    vis_thr: float | None = None,
) -> list[int]:
    """Greedy OKS-NMS: indices kept, best score first (ties keep input order).

    ``keypoints`` (N, K, 3) as (x, y, score); a pose is dropped when its OKS with an
    already kept, higher-scored pose is above ``thr``.
    """
    kpts = np.asarray(keypoints, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64).reshape(-1)
    ar = np.asarray(areas, dtype=np.float64).reshape(-1)
    if kpts.shape[0] == 0:
        return []
    if kpts.ndim != 3 or kpts.shape[2] < 3:
        raise ValueError(f"keypoints must be (N, K, 3), got shape {kpts.shape}")
    order = np.argsort(-sc, kind="stable")
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        ovr = oks_iou(kpts[i], kpts[rest], ar[i], ar[rest], sigmas, vis_thr)
        order = rest[ovr <= thr]
    return keep


# --------------------------------------------------------------------------- results


def _py_id(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return int(v)
    return v


def coco_topdown_results(
    image_ids: Sequence,
    keypoints: np.ndarray,
    kpt_scores: np.ndarray,
    box_scores: np.ndarray,
    areas: np.ndarray,
    sigmas: np.ndarray,
    kpt_score_thr: float = RESCORE_KPT_THR,
    nms_thr: float = 0.9,
    rescore: bool = True,
    nms: bool = True,
    category_id: int = 1,
) -> list[dict]:
    """COCO results dicts from top-down predictions (one entry per person box).

    ``keypoints`` (N, K, 2) in image pixels, ``kpt_scores`` (N, K), ``box_scores`` (N,),
    ``areas`` (N,) (the box / scale area used by OKS-NMS). With ``rescore`` the score is
    :func:`person_scores`: box score x mean of the keypoint scores above ``kpt_score_thr``;
    without, the box score. With ``nms`` greedy OKS-NMS at ``nms_thr`` runs per image.
    Output order: images in first-seen order, kept poses best first.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    ks = np.asarray(kpt_scores, dtype=np.float64)
    bs = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    ar = np.asarray(areas, dtype=np.float64).reshape(-1)
    ids = list(np.asarray(image_ids).reshape(-1)) if not isinstance(image_ids, list) else list(image_ids)
    n = len(ids)
    if kp.ndim != 3 or kp.shape[0] != n or kp.shape[2] != 2:
        raise ValueError(f"keypoints must be (N, K, 2) with N={n}, got shape {kp.shape}")
    if ks.shape != kp.shape[:2] or bs.shape[0] != n or ar.shape[0] != n:
        raise ValueError(
            f"shape mismatch: keypoints {kp.shape}, kpt_scores {ks.shape}, box_scores {bs.shape}, areas {ar.shape}"
        )
    if rescore:
        scores = person_scores(bs, ks, kpt_score_thr)
    else:
        scores = bs.copy()
    full = np.concatenate([kp, ks[..., None]], axis=2)  # (N, K, 3)

    by_image: dict[Any, list[int]] = defaultdict(list)
    for i, img in enumerate(ids):
        by_image[_py_id(img)].append(i)

    results: list[dict] = []
    for img, idx in by_image.items():
        idx_arr = np.asarray(idx, dtype=np.int64)
        if nms and len(idx) > 1:
            kept = oks_nms(full[idx_arr], scores[idx_arr], ar[idx_arr], sigmas, thr=nms_thr)
            sel = idx_arr[kept]
        else:
            sel = idx_arr[np.argsort(-scores[idx_arr], kind="stable")]
        for i in sel:
            results.append({
                "image_id": img,
                "category_id": int(category_id),
                "keypoints": [float(v) for v in full[i].reshape(-1)],
                "score": float(scores[i]),
            })
    return results


# --------------------------------------------------------------------------- evaluation


def _read_json(path: Path, field: str) -> Any:
    if not path.is_file():
        raise DataError(path, field, "file not found")
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, field, f"not valid JSON ({exc})") from None


def _load_coco(ann: Any, verbose: bool = False):
    """``ann``: a ``COCO`` object (used as it is) or the path of an annotation file, checked
    by :func:`ground_truth_coco`."""
    from pycocotools.coco import COCO

    if isinstance(ann, COCO):
        return ann
    path = Path(ann)
    return ground_truth_coco(_read_json(path, "annotations"), str(path), verbose)


def _load_results(results: Any) -> tuple[list, str]:
    if isinstance(results, (str, Path)):
        return _read_json(Path(results), "results"), str(results)
    return results, "<results>"


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def is_finite_number(v: Any) -> bool:
    """A number (not a bool) that is neither NaN nor infinite."""
    return _is_real(v) and math.isfinite(float(v))


def is_number_list(value: Any, length: int) -> bool:
    """A list of ``length`` numbers (NaN and infinity included: JSON files may hold them)."""
    return isinstance(value, (list, tuple)) and len(value) == length and all(_is_real(v) for v in value)


def check_id(value: Any, source: str, field: str, entry: str = "") -> int:
    """A COCO image or category id as an int (numpy integers and integral floats, which
    some tools write, included). A string, a list or a fraction is refused here: pycocotools
    would crash on it, or miss every lookup."""
    if isinstance(value, np.generic):
        value = value.item()
    if _is_real(value) and float(value).is_integer():
        return int(value)
    raise DataError(source, field, f"{entry}expected an integer id, got {reprlib.repr(value)}")


def check_keypoint_annotation(ann: Any, where: str, source: str, num_keypoints: int, image_ids,
                              keypoints_of: str) -> tuple[int, np.ndarray, np.ndarray]:
    """The image id, keypoints (K, 3) as x, y, v and bbox [x, y, w, h] of one COCO keypoint
    annotation; a DataError names the field that is missing or of the wrong kind.

    Values may be NaN or infinite (JSON readers accept them): the data sources unlabel or
    skip such entries and count them, :func:`ground_truth_coco` refuses them.
    """
    if not isinstance(ann, dict):
        raise DataError(source, where, "not an object")
    for key in ("image_id", "bbox", "keypoints"):
        if key not in ann:
            raise DataError(source, f"{where}.{key}", "missing (a keypoint annotation needs image_id, bbox, keypoints)")
    image_id = check_id(ann["image_id"], source, f"{where}.image_id")
    if image_id not in image_ids:
        raise DataError(source, f"{where}.image_id", f"{image_id!r} is not in images[]")
    k = num_keypoints
    if not is_number_list(ann["keypoints"], 3 * k):
        n = len(ann["keypoints"]) if isinstance(ann["keypoints"], list) else type(ann["keypoints"]).__name__
        raise DataError(source, f"{where}.keypoints", f"expected {3 * k} numbers ({k} keypoints of {keypoints_of} "
                        f"as x, y, v), got {n}")
    if not is_number_list(ann["bbox"], 4):
        raise DataError(source, f"{where}.bbox", f"expected [x, y, w, h], got {reprlib.repr(ann['bbox'])}")
    for key in ("area", "num_keypoints", "iscrowd"):  # optional; pycocotools computes with them
        if key in ann and not (isinstance(ann[key], numbers.Real) and math.isfinite(ann[key])):
            raise DataError(source, f"{where}.{key}", f"expected a finite number, got {reprlib.repr(ann[key])}")
    keypoints = np.asarray(ann["keypoints"], dtype=np.float64).reshape(k, 3)
    return image_id, keypoints, np.asarray(ann["bbox"], dtype=np.float64)


def ground_truth_coco(data: Any, source: str, verbose: bool = False):
    """A pycocotools ``COCO`` of an annotation file's content, checked so that COCOeval can
    neither crash on it nor be fooled by it.

    Annotations of categories with keypoint names are checked with
    :func:`check_keypoint_annotation`, and a non-finite joint or box is refused (a NaN OKS
    matches any prediction); annotations of other categories are left out (nothing to
    score). What real exports leave out is derived: ``area`` (the box area where missing
    or 0, as the data sources take it), ``num_keypoints`` (the labelled joints),
    ``iscrowd`` (0). Annotation ids are renumbered from 1: COCOeval takes a match with id
    0 for no match, and two persons with one id for one person, twice.
    """
    from pycocotools.coco import COCO

    if not isinstance(data, dict):
        raise DataError(source, "(top level)", "expected a JSON object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(source, key, "missing or not a list")
    images = [_checked_image(img, f"images[{i}]", source) for i, img in enumerate(data["images"])]
    image_ids = {img["id"] for img in images}
    joint_names = _joint_names(data["categories"], source)
    annotations = []
    for i, ann in enumerate(data["annotations"]):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict) or "category_id" not in ann:
            raise DataError(source, where, "expected an object with a category_id")
        category = check_id(ann["category_id"], source, f"{where}.category_id")
        if category in joint_names:
            scoreable = _scoreable_annotation(ann, where, source, category, joint_names[category], image_ids)
            annotations.append({**scoreable, "id": len(annotations) + 1, "category_id": category})
    coco = COCO()
    coco.dataset = {**data, "images": images, "annotations": annotations}
    with contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _checked_image(img: Any, where: str, source: str) -> dict:
    if not isinstance(img, dict) or "id" not in img:
        raise DataError(source, where, "expected an object with an id")
    return {**img, "id": check_id(img["id"], source, f"{where}.id")}


def _joint_names(categories: list, source: str) -> dict[int, list]:
    """Category id → keypoint names, for the categories that have them."""
    names = {}
    for i, cat in enumerate(categories):
        if not isinstance(cat, dict) or "id" not in cat or not isinstance(cat.get("keypoints", []), list):
            raise DataError(source, f"categories[{i}]", "expected an object with an id (and a list of keypoint names)")
        if cat.get("keypoints"):
            names[check_id(cat["id"], source, f"categories[{i}].id")] = cat["keypoints"]
    return names


def _scoreable_annotation(ann: dict, where: str, source: str, category: int, names: list, image_ids: set) -> dict:
    """``ann`` checked and completed for COCOeval (see :func:`ground_truth_coco`)."""
    image_id, kpts, bbox = check_keypoint_annotation(ann, where, source, len(names), image_ids, f"category {category}")
    bad = non_finite_joints(kpts)
    if bad.any():
        j = int(np.argmax(bad))
        raise DataError(source, f"{where}.keypoints", f"joint {j} ({names[j]}) is not finite: x, y, v = "
                        f"{', '.join(str(v) for v in kpts[j])}")
    if not np.isfinite(bbox).all():
        raise DataError(source, f"{where}.bbox", f"not finite: {bbox.tolist()}")
    area = float(ann.get("area") or bbox[2] * bbox[3])
    if area < 0:
        raise DataError(source, f"{where}.area", f"expected a number >= 0, got {area} (the box area where missing)")
    return {**ann, "image_id": image_id, "area": area, "iscrowd": ann.get("iscrowd", 0),
            "num_keypoints": ann.get("num_keypoints", int((kpts[:, 2] > 0).sum()))}


def validate_results(results: Any, coco, source: str = "<results>") -> list[dict]:
    """Check a COCO keypoint results list against the annotations; return a clean copy.

    Each entry must be an object with ``image_id`` (an image of the annotations),
    ``category_id`` (a category with keypoints), ``keypoints`` (3 x K finite numbers for
    that category) and a finite ``score``. Raises :class:`DataError` naming the field and
    the entry index.
    """
    if not isinstance(results, list):
        raise DataError(source, "results", f"expected a list of result objects, got {type(results).__name__}")
    if not results:
        raise DataError(source, "results", "no results to evaluate (empty list)")
    img_ids = set(coco.getImgIds())
    num_kpts = {
        c["id"]: len(c.get("keypoints") or []) for c in coco.dataset.get("categories", [])
    }
    kpt_cats = [c for c, n in num_kpts.items() if n > 0]
    clean: list[dict] = []
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            raise DataError(source, "results", f"entry {i}: expected an object, got {type(r).__name__}")
        for key in ("image_id", "keypoints", "score"):
            if key not in r:
                raise DataError(source, key, f"entry {i}: missing {key!r}")
        cat = r.get("category_id", None)
        if cat is None:
            if len(kpt_cats) != 1:
                raise DataError(source, "category_id", f"entry {i}: missing 'category_id'")
            cat = kpt_cats[0]  # one keypoint category (person): the id is implied
        cat = check_id(cat, source, "category_id", f"entry {i}: ")
        if cat not in num_kpts or num_kpts[cat] == 0:
            raise DataError(source, "category_id", f"entry {i}: category {cat!r} is not a keypoint category of the annotations")
        img = check_id(r["image_id"], source, "image_id", f"entry {i}: ")
        if img not in img_ids:
            raise DataError(source, "image_id", f"entry {i}: image id {img!r} is not in the annotations")
        kp = r["keypoints"]
        if not isinstance(kp, (list, tuple)):
            raise DataError(source, "keypoints", f"entry {i}: expected a list of numbers, got {type(kp).__name__}")
        want = 3 * num_kpts[cat]
        if len(kp) != want:
            raise DataError(
                source, "keypoints",
                f"entry {i}: expected {want} values ({num_kpts[cat]} keypoints x [x, y, score]), got {len(kp)}",
            )
        if not all(is_finite_number(v) for v in kp):
            raise DataError(source, "keypoints", f"entry {i}: values must be finite numbers")
        if not is_finite_number(r["score"]):
            raise DataError(source, "score", f"entry {i}: must be a finite number, got {r['score']!r}")
        clean.append({
            "image_id": img,
            "category_id": cat,
            "keypoints": [float(v) for v in kp],
            "score": float(r["score"]),
        })
    return clean


def coco_keypoint_eval(
    ann: Any,
    results: Any,
    sigmas: np.ndarray | None = None,
    verbose: bool = False,
) -> dict[str, float]:
    """OKS AP / AR with pycocotools' COCOeval(iouType="keypoints").

    ``ann`` is an annotation path or a ``pycocotools.coco.COCO``; ``results`` a list of
    result dicts or a results JSON path. ``sigmas`` default to the COCO ones for 17
    keypoints, else to ``DEFAULT_OKS_SIGMA`` per joint (as a ``data.layout: from_data``
    model has them). Returns AP, AP50, AP75, APM, APL, AR, AR50, AR75, ARM, ARL
    (fractions, -1 where COCOeval has nothing to score, e.g. no medium persons).
    """
    coco = _load_coco(ann, verbose)
    data, source = _load_results(results)
    return _score(coco, validate_results(data, coco, source), sigmas, verbose)


def _score(coco, dets: list[dict], sigmas: np.ndarray | None, verbose: bool) -> dict[str, float]:
    """COCOeval of validated results ``dets`` against the annotations ``coco``."""
    from pycocotools.cocoeval import COCOeval

    k = len(dets[0]["keypoints"]) // 3
    if sigmas is None:  # COCO's for 17 joints, else the default of a layout from the data
        sig = COCO_SIGMAS if k == len(COCO_SIGMAS) else np.full(k, DEFAULT_OKS_SIGMA)
    else:
        sig = np.asarray(sigmas, dtype=np.float64).reshape(-1)
        if sig.shape[0] != k:
            raise ValueError(f"{sig.shape[0]} sigmas for {k} keypoints per result")
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        coco_dt = coco.loadRes(copy.deepcopy(dets))
        ev = COCOeval(coco, coco_dt, iouType="keypoints")
        ev.params.kpt_oks_sigmas = sig
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, ev.stats)}


def shared_joints(coco, result_layout) -> tuple[list[int], list[int], list[str]]:
    """Joints that a results layout shares by name with the annotations' person category:
    (indices in the annotations, indices in the results, names), in annotation order."""
    ann_names = annotation_joint_names(coco)
    pairs = [(i, result_layout.names.index(n), n) for i, n in enumerate(ann_names) if n in result_layout.names]
    if not pairs:
        raise DataError("annotations", "categories.keypoints",
                        f"no joint names in common with layout {result_layout.name!r} ({', '.join(ann_names)})")
    gt_idx, res_idx, names = (list(v) for v in zip(*pairs))
    return gt_idx, res_idx, names


def _coco_on_joints(coco, joints: list[int]):
    """A copy of the annotations that keeps only ``joints`` of every person."""
    from pycocotools.coco import COCO

    data = copy.deepcopy(coco.dataset)
    for cat in data["categories"]:
        if cat.get("keypoints"):
            cat["keypoints"] = [cat["keypoints"][j] for j in joints]
            cat["skeleton"] = []
    for a in data["annotations"]:
        if a.get("keypoints"):
            kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3)[joints]
            a["keypoints"] = kp.reshape(-1).tolist()
            a["num_keypoints"] = int((kp[:, 2] > 0).sum())
    reduced = COCO()
    reduced.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        reduced.createIndex()
    return reduced


def _annotation_sigmas(names: list[str]) -> np.ndarray:
    """OKS sigmas of an annotation file's joints: COCO's for COCO-17 files (also for 17
    joints named otherwise, as COCOeval has them by index), else the default per joint
    (what a ``data.layout: from_data`` model is validated with)."""
    if len(names) == len(COCO_SIGMAS):
        return COCO_SIGMAS
    return np.full(len(names), DEFAULT_OKS_SIGMA)


def evaluate_results_file(ann_file: Any, results_file: Any, sigmas: np.ndarray | None = None,
                          verbose: bool = False, layout: str | None = None,
                          joints: Sequence[str] | None = None) -> dict:
    """Validate a COCO keypoint results file against the annotations and evaluate it.

    ``layout``: the results' keypoint layout when it is not the annotations' own (e.g.
    "lsp" results of a model trained on LSP, scored on COCO persons). OKS AP is then
    computed over the joints the two share by name (12 body joints for LSP or MPII on
    COCO: no eyes, ears or nose), with the annotations' sigmas of those joints and each
    person's visible-joint count recounted; the metrics name the joints used.

    ``joints``: score only these joints (annotation names, e.g. the 12 body joints of a
    COCO-17 model): OKS AP over them, as for ``layout``, with the sigmas of those joints
    (``sigmas``, one per annotation joint, else COCO's for 17 joints, else
    ``DEFAULT_OKS_SIGMA``), and PCK over them (:func:`results_pck`); the metrics name them.
    """
    if layout is None and joints is None:
        return coco_keypoint_eval(ann_file, results_file, sigmas=sigmas, verbose=verbose)
    coco = _load_coco(ann_file, verbose)
    data, source = _load_results(results_file)
    if layout is not None:
        from slimpose.keypoints import get_layout

        result_layout = get_layout(layout)
        gt_idx, res_idx, names = shared_joints(coco, result_layout)
        k = result_layout.num_keypoints
        what = f"for layout {layout!r}"
        ann_sigmas = {n: s for n, s in zip(COCO17.names, COCO_SIGMAS)}
        missing = [n for n in names if n not in ann_sigmas]
        if sigmas is None and missing:
            raise ValueError(f"no OKS sigma known for joint(s) {', '.join(missing)}: pass sigmas")
        name_sigmas = None if sigmas is None else dict(zip(names, np.asarray(sigmas, dtype=np.float64).reshape(-1)))
        sigma_of = (lambda n: ann_sigmas[n]) if sigmas is None else (lambda n: name_sigmas[n])
    else:
        names = annotation_joint_names(coco)
        gt_idx = res_idx = list(range(len(names)))
        k = len(names)
        what = "for the annotations' keypoints"
        sig = _annotation_sigmas(names) if sigmas is None else np.asarray(sigmas, dtype=np.float64).reshape(-1)
        if len(sig) != k:
            raise ValueError(f"{len(sig)} sigmas for {k} keypoints")
        name_sigmas = dict(zip(names, sig))
        sigma_of = name_sigmas.__getitem__
    if joints is not None:
        joints = list(joints)
        unknown = [j for j in joints if j not in names]
        if not joints or unknown or len(set(joints)) != len(joints):
            problem = f"{', '.join(unknown)}: not joint names" if unknown else "empty or repeated names"
            raise ConfigError(f"joints: {problem}; give distinct names of {', '.join(names)}")
        keep = [names.index(j) for j in joints]
        gt_idx, res_idx, names = [gt_idx[i] for i in keep], [res_idx[i] for i in keep], joints
    reduced = []
    for i, r in enumerate(data if isinstance(data, list) else []):
        kp = r.get("keypoints") if isinstance(r, dict) else None
        if not (isinstance(kp, list) and len(kp) == 3 * k and all(is_finite_number(v) for v in kp)):
            raise DataError(source, "keypoints", f"entry {i}: expected {3 * k} values {what} "
                            f"({k} keypoints x [x, y, score], finite numbers)")
        reduced.append({**r, "keypoints": np.asarray(kp, dtype=np.float64).reshape(k, 3)[res_idx].reshape(-1).tolist()})
    sig = np.asarray([sigma_of(n) for n in names], dtype=np.float64)
    on_joints = _coco_on_joints(coco, gt_idx)
    dets = validate_results(reduced or data, on_joints, source)
    metrics: dict = _score(on_joints, dets, sig, verbose)
    if joints is not None:
        metrics.update(results_pck(on_joints, dets, sig))
    metrics["joints"] = names
    return metrics


def annotation_joint_names(coco) -> list[str]:
    """The joint names of the annotations' one keypoint category."""
    cats = [c for c in coco.dataset.get("categories", []) if c.get("keypoints")]
    if len(cats) != 1:
        raise DataError("annotations", "categories", f"expected one keypoint category, found {len(cats)}")
    return list(cats[0]["keypoints"])


def results_pck(coco, dets: list[dict], sigmas: np.ndarray, thr: float = 0.2) -> dict[str, float]:
    """PCK of results against annotations, normalised by each person's box (its longer
    side, :func:`slimpose.metrics.pck.box_sizes`). In every image the results, best score
    first, each take the unmatched annotated person (not crowd, a joint labelled) they
    have the highest OKS with (``sigmas``); a person no result takes has every labelled
    joint wrong. "PCK" at ``thr``, "PCK@0.1" at 0.1, over the labelled (person, joint) pairs."""
    from slimpose.metrics.pck import box_sizes, keypoint_pck_accuracy

    k = len(sigmas)
    people = [a for a in coco.dataset["annotations"] if not a.get("iscrowd", 0) and a.get("keypoints")
              and (np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3)[:, 2] > 0).any()]
    if not people:
        return {"PCK": float("nan"), "PCK@0.1": float("nan")}
    results_of, people_of = defaultdict(list), defaultdict(list)
    for d in dets:
        results_of[d["image_id"]].append(d)
    for i, a in enumerate(people):
        people_of[a["image_id"]].append(i)
    # a person no result takes: every labelled joint wrong (a prediction infinitely far off)
    pred = np.full((len(people), k, 2), np.inf)
    for image_id, free in people_of.items():
        for d in sorted(results_of.get(image_id, []), key=lambda d: -d["score"]):
            if not free:
                break
            kpt = np.asarray(d["keypoints"], dtype=np.float64).reshape(k, 3)
            best = free[int(np.argmax([_oks_one(kpt, people[i], sigmas) for i in free]))]
            pred[best] = kpt[:, :2]
            free = [i for i in free if i != best]
    gt = np.stack([np.asarray(a["keypoints"], dtype=np.float64).reshape(k, 3) for a in people])
    norm = box_sizes(np.asarray([a.get("bbox") or [0.0, 0.0, 0.0, 0.0] for a in people], dtype=np.float64))
    _, mean, _ = keypoint_pck_accuracy(pred, gt[..., :2], gt[..., 2] > 0, thr, norm)
    _, mean01, _ = keypoint_pck_accuracy(pred, gt[..., :2], gt[..., 2] > 0, 0.1, norm)
    return {"PCK": mean, "PCK@0.1": mean01}


def _oks_one(kpt: np.ndarray, ann: dict, sigmas: np.ndarray) -> float:
    """COCOeval's OKS of one result (K, 3) with one annotated person (labelled joints only)."""
    g = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
    vis = g[:, 2] > 0
    area = float(ann.get("area") or 0.0) or float(np.prod((ann.get("bbox") or [0, 0, 1, 1])[2:]))
    d2 = ((kpt[:, :2] - g[:, :2]) ** 2).sum(axis=1)
    e = d2 / (2 * (2 * sigmas) ** 2 * (area + np.spacing(1)))
    return float(np.exp(-e[vis]).mean()) if vis.any() else 0.0
