"""Data sources: COCO-format, LSP/LSPET, MPII; counted skips and DataErrors for bad input."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from slimpose.config import DatasetConfig
from slimpose.data.coco import CocoSource
from slimpose.data.lsp import LspSource
from slimpose.data.mpii import MpiiSource
from slimpose.data.base import read_image
from slimpose.data.sources import build_source
from slimpose.errors import DataError
from slimpose.keypoints import COCO17, LSP14, MPII16

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
COCO_MINI = SHARED_DATA / "coco-mini"
LSPET = SHARED_DATA / "lspet"
INPUT = (256, 192)

needs_coco = pytest.mark.skipif(not COCO_MINI.is_dir(), reason="../shared/data/coco-mini not present")
needs_lspet = pytest.mark.skipif(not LSPET.is_dir(), reason="../shared/data/lspet not present")


# ----------------------------------------------------------------------------- helpers
def _write_image(path: Path, w: int = 64, h: int = 48) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 128, np.uint8))


def _ann(i, image_id=1, bbox=(10, 10, 30, 30), n_labelled=5, **kw):
    kpts = []
    for j in range(17):
        kpts += [12 + j, 15 + j, 2] if j < n_labelled else [0, 0, 0]
    return {"id": i, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": list(bbox), "area": 500.0,
            "num_keypoints": n_labelled, "keypoints": kpts, **kw}


def _coco(tmp_path: Path, annotations, images=None, write_images=True) -> tuple[Path, Path]:
    images = images or [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}]
    img_dir = tmp_path / "img"
    if write_images:
        for im in images:
            _write_image(img_dir / im["file_name"])
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": annotations,
                               "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17.names)}]}))
    return ann, img_dir


def _coco_source(ann, img_dir, train=True, **kw):
    return CocoSource(ann, img_dir, COCO17, 0.75, train=train, **kw)


def _data_error(fn, *args, **kwargs) -> DataError:
    """The DataError that ``fn`` raises: any other exception reaches the user as a traceback."""
    with pytest.raises(Exception) as info:
        fn(*args, **kwargs)
    assert isinstance(info.value, DataError), f"a traceback, not one line: {info.value!r}"
    return info.value


# ----------------------------------------------------------------------------- COCO
@needs_coco
@pytest.mark.realdata
def test_coco_mini_train_and_val_counted_skips():
    train_ann = str(COCO_MINI / "annotations/person_keypoints_train2017.json")
    src = build_source(DatasetConfig(type="coco", ann_file=train_ann, img_dir=str(COCO_MINI / "train2017")),
                       COCO17, INPUT, train=True)
    assert len(src.instances) == 86
    assert src.skipped == {"crowd": 5, "no_keypoints": 81}
    assert src.main_metric == "AP"
    inst = src.instances[0]
    assert inst.keypoints.shape == (17, 2) and inst.visible.shape == (17,)
    assert inst.scale[0] / inst.scale[1] == pytest.approx(0.75, rel=1e-5)
    bbox = inst.extra["bbox"]  # clipped box; the scale is it padded by 1.25 and aspect-fixed
    assert min(inst.scale[0] / bbox[2], inst.scale[1] / bbox[3]) == pytest.approx(1.25, rel=1e-4)
    assert Path(inst.image_path).is_file()
    val = build_source(DatasetConfig(type="coco", ann_file=str(COCO_MINI / "annotations/person_keypoints_val2017.json"),
                                     img_dir=str(COCO_MINI / "val2017"), limit=10), COCO17, INPUT, train=False)
    assert len(val.instances) == 10
    assert val.skipped == {"crowd": 1, "no_keypoints": 49, "limit": 58}


@needs_coco
@pytest.mark.realdata
def test_coco_evaluate_ground_truth_scores_one(tmp_path):
    ann = COCO_MINI / "annotations/person_keypoints_val2017.json"
    src = _coco_source(ann, COCO_MINI / "val2017", train=False)
    n = len(src.instances)
    kpts = np.stack([i.keypoints for i in src.instances])
    scores = np.stack([i.visible for i in src.instances]) * 0.9 + 0.05
    metrics = src.evaluate(kpts, scores, np.arange(n), out_dir=tmp_path)
    assert metrics["AP"] == pytest.approx(1.0)
    results = json.loads((tmp_path / "results_keypoints.json").read_text())
    assert len(results) == n and len(results[0]["keypoints"]) == 51
    # noisy predictions score lower
    noisy = kpts + np.random.default_rng(0).normal(0, 8, kpts.shape)
    assert src.evaluate(noisy, scores, np.arange(n))["AP"] < 0.9


@needs_coco
@pytest.mark.realdata
def test_coco_detection_boxes(tmp_path):
    ann = COCO_MINI / "annotations/person_keypoints_val2017.json"
    data = json.loads(ann.read_text())
    image_id = data["images"][0]["id"]
    dets = [{"image_id": image_id, "category_id": 1, "bbox": [10, 20, 100, 200], "score": 0.9},
            {"image_id": image_id, "category_id": 1, "bbox": [10, 20, 100, 200], "score": 0.05},
            {"image_id": image_id, "category_id": 3, "bbox": [10, 20, 100, 200], "score": 0.9},
            {"image_id": image_id, "category_id": 1, "bbox": [10, 20, 0, 200], "score": 0.9}]
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps(dets))
    src = _coco_source(ann, COCO_MINI / "val2017", train=False, det_file=det_file, det_score_thr=0.1)
    assert len(src.instances) == 1
    assert src.skipped == {"low_score": 1, "not_person": 1, "zero_area_box": 1}
    inst = src.instances[0]
    assert inst.box_score == pytest.approx(0.9) and not inst.visible.any()
    np.testing.assert_allclose(inst.center, [60, 120])
    with pytest.raises(DataError, match="det_file"):
        _coco_source(ann, COCO_MINI / "val2017", train=True, det_file=det_file)
    det_file.write_text(json.dumps([{"image_id": -5, "bbox": [0, 0, 5, 5], "score": 1.0}]))
    with pytest.raises(DataError, match=r"dets.json: \[0\].image_id"):
        _coco_source(ann, COCO_MINI / "val2017", train=False, det_file=det_file)


def test_coco_counted_skips_and_clipping(tmp_path):
    anns = [
        _ann(1),
        _ann(2, iscrowd=1),
        _ann(3, n_labelled=0),
        _ann(4, bbox=(70, 10, 20, 20)),  # entirely right of the 64-px image: zero area after clipping
        _ann(5, bbox=(-10, -10, 200, 200)),  # clipped to the image
    ]
    anns[4]["keypoints"][0:3] = [80, 10, 2]  # a labelled joint outside the image
    ann, img_dir = _coco(tmp_path, anns)
    src = _coco_source(ann, img_dir)
    assert [i.instance_id for i in src.instances] == [1, 5]
    assert src.skipped == {"crowd": 1, "no_keypoints": 1, "zero_area_box": 1, "joints_outside_image": 1}
    clipped = src.instances[1]
    np.testing.assert_allclose(clipped.extra["bbox"], [0, 0, 63, 47])
    assert clipped.visible[0] == 0 and clipped.visible[1] == 1
    np.testing.assert_allclose(clipped.keypoints[0], [0, 0])


def test_coco_image_size_is_optional(tmp_path):
    ann, img_dir = _coco(tmp_path, [_ann(1, bbox=(-5, 10, 300, 30))], images=[{"id": 1, "file_name": "a.jpg"}])
    src = _coco_source(ann, img_dir)
    np.testing.assert_allclose(src.instances[0].extra["bbox"], [0, 10, 295, 30])  # clipped at 0 only
    ann, img_dir = _coco(tmp_path, [_ann(1)], images=[{"id": 1, "file_name": "a.jpg", "width": 0, "height": 5}])
    with pytest.raises(DataError, match=r"images\[0\]\.width/height"):
        _coco_source(ann, img_dir)


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda a: a.pop("keypoints"), r"annotations\[0\]\.keypoints"),
        (lambda a: a.update(keypoints=[1, 2, 2] * 16), r"annotations\[0\]\.keypoints: expected 51 numbers"),
        (lambda a: a.pop("bbox"), r"annotations\[0\]\.bbox"),
        (lambda a: a.update(bbox=[1, 2, 3]), r"annotations\[0\]\.bbox"),
        (lambda a: a.update(image_id=99), r"annotations\[0\]\.image_id"),
        (lambda a: a.update(image_id="1"), r"annotations\[0\]\.image_id: expected an integer id"),
        (lambda a: a.update(image_id=[1]), r"annotations\[0\]\.image_id: expected an integer id"),
        (lambda a: a.update(area="big"), r"annotations\[0\]\.area: expected a finite number"),
    ],
)
def test_coco_malformed_annotations_name_file_and_field(tmp_path, mutate, field):
    a = _ann(1)
    mutate(a)
    ann, img_dir = _coco(tmp_path, [a])
    err = _data_error(_coco_source, ann, img_dir)
    assert re.search(field, str(err)) and str(ann) in str(err)


def test_coco_image_id_in_images_not_an_integer(tmp_path):
    ann, img_dir = _coco(tmp_path, [_ann(1)], images=[{"id": [1], "file_name": "a.jpg"}])
    assert re.search(r"images\[0\]\.id: expected an integer id", str(_data_error(_coco_source, ann, img_dir)))


def test_coco_non_finite_joints_and_boxes_are_counted_and_never_scored(tmp_path):
    """JSON readers accept NaN: a labelled NaN joint is unlabelled, a NaN box skipped, both
    counted, and the ground truth that evaluate scores against agrees (COCOeval counts a
    NaN OKS as a match, however far off the prediction)."""
    nan, inf = float("nan"), float("inf")
    anns = [_ann(1), _ann(2, image_id=2), _ann(3, image_id=2)]
    anns[1]["keypoints"][0:6] = [nan, 15, 2, 13, inf, 2]  # joints 0 and 1
    anns[1]["keypoints"][30:33] = [nan, nan, 0]  # not labelled: NaN or not, nothing to count
    anns[2]["bbox"][2] = nan
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 48} for i in (1, 2)]
    ann, img_dir = _coco(tmp_path, anns, images=images)
    src = _coco_source(ann, img_dir, train=False)
    assert src.skipped == {"non_finite_joints": 2, "non_finite_box": 1}
    assert "non_finite_box: 1, non_finite_joints: 2" in src.summary()
    assert [i.instance_id for i in src.instances] == [1, 2]
    second = src.instances[1]
    np.testing.assert_array_equal(second.visible[:5], [0, 0, 1, 1, 1])
    assert np.isfinite(second.keypoints).all() and np.isfinite(second.center).all()
    exact = np.stack([i.keypoints for i in src.instances])
    scores = np.full(exact.shape[:2], 0.9)
    assert src.evaluate(exact, scores, np.arange(2))["AP"] == pytest.approx(1.0)
    assert src.evaluate(exact + 40.0, scores, np.arange(2))["AP"] == pytest.approx(0.0)
    src.truncate(1)  # a quick run is scored on the images it covers
    assert src.evaluate(exact[:1], scores[:1], np.arange(1))["AP"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"image_id": [1]}, r"\[1\]\.image_id: expected an integer id"),
        ({"score": float("nan")}, r"\[1\]\.score: expected a finite number, got nan"),
        ({"score": "high"}, r"\[1\]\.score: expected a finite number, got 'high'"),
        ({"bbox": [10, 10, float("nan"), 20]}, r"\[1\]\.bbox: expected \[x, y, w, h\] finite numbers"),
    ],
    ids=["list_image_id", "nan_score", "string_score", "nan_box"],
)
def test_coco_detection_file_entries_name_file_entry_and_field(tmp_path, change, field):
    ann, img_dir = _coco(tmp_path, [_ann(1)])
    good = {"image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "score": 0.9}
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps([good, {**good, **change}]))
    err = _data_error(_coco_source, ann, img_dir, train=False, det_file=det_file)
    assert re.search(rf"dets\.json: {field}", str(err)), str(err)


def test_coco_malformed_files(tmp_path):
    ann, img_dir = _coco(tmp_path, [_ann(1)], write_images=False)
    with pytest.raises(DataError, match=r"images\[\]\.file_name.*not found.*a\.jpg"):
        _coco_source(ann, img_dir)
    ann, img_dir = _coco(tmp_path, [_ann(1)], images=[{"id": 1, "width": 64, "height": 48}], write_images=False)
    with pytest.raises(DataError, match=r"images\[0\]\.file_name"):
        _coco_source(ann, img_dir)
    ann.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        _coco_source(ann, img_dir)
    with pytest.raises(DataError, match="file not found"):
        _coco_source(tmp_path / "missing.json", img_dir)
    # nothing usable left after filtering
    ann, img_dir = _coco(tmp_path, [_ann(1, iscrowd=1), _ann(2, n_labelled=0)])
    msg = r"annotations: no usable person instances \(skipped crowd: 1, no_keypoints: 1\)"
    with pytest.raises(DataError, match=msg):
        _coco_source(ann, img_dir)
    with pytest.raises(DataError, match="img_dir"):
        build_source(DatasetConfig(type="coco", ann_file=str(ann)), COCO17, INPUT, True)
    with pytest.raises(DataError, match="type"):
        build_source(DatasetConfig(type="voc", ann_file=str(ann)), COCO17, INPUT, True)


# ----------------------------------------------------------------------------- LSP / LSPET
@needs_lspet
@pytest.mark.realdata
def test_lspet_selection_and_box_from_joints():
    src = build_source(DatasetConfig(type="lsp", ann_file=str(LSPET / "joints.mat"), first=8001, last=9000),
                       LSP14, INPUT, train=False)
    assert len(src.instances) == 1000 and src.main_metric == "PCK"
    assert Path(src.instances[0].image_path).name == "im08001.jpg"
    assert Path(src.instances[-1].image_path).name == "im09000.jpg"
    joints = scipy.io.loadmat(str(LSPET / "joints.mat"))["joints"]
    for inst in src.instances[:50]:
        j = joints[:, :, inst.image_id - 1]
        lab = (j[:, 2] > 0) & (j[:, :2] > 0).all(axis=1)
        np.testing.assert_array_equal(inst.visible > 0, lab)
        pts = j[lab, :2]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        np.testing.assert_allclose(inst.center, (lo + hi) / 2, rtol=1e-5)
        w, h = hi - lo
        w, h = max(w, 0.75 * h), max(h, w / 0.75)
        np.testing.assert_allclose(inst.scale, [1.25 * w, 1.25 * h], rtol=1e-4)
        np.testing.assert_allclose(inst.keypoints[lab], pts, rtol=1e-5)
        assert (inst.keypoints[~lab] == 0).all()
    train = build_source(DatasetConfig(type="lsp", ann_file=str(LSPET / "joints.mat"), first=1, last=8000),
                         LSP14, INPUT, train=True)
    assert len(train.instances) + train.skipped.get("too_few_joints", 0) == 8000
    gt = np.stack([i.keypoints for i in src.instances])
    metrics = src.evaluate(gt, np.ones(gt.shape[:2]), np.arange(len(gt)))
    assert metrics["PCK"] == pytest.approx(1.0)


def _lsp_original(tmp_path: Path, n: int = 3) -> Path:
    """A tiny LSP-style set: joints (3, 14, n) and 4-digit image names."""
    rng = np.random.default_rng(0)
    joints = np.zeros((3, 14, n))
    joints[0] = rng.uniform(5, 60, (14, n))
    joints[1] = rng.uniform(5, 40, (14, n))
    joints[2] = (rng.random((14, n)) < 0.3).astype(float)  # 1 = occluded in LSP
    joints[:2, 0, 1] = -1  # image 2: right ankle outside / not annotated
    root = tmp_path / "lsp"
    for i in range(1, n + 1):
        _write_image(root / "images" / f"im{i:04d}.jpg")
    scipy.io.savemat(str(root / "joints.mat"), {"joints": joints})
    return root


def test_lsp_original_orientation_and_flags(tmp_path):
    root = _lsp_original(tmp_path)
    joints = scipy.io.loadmat(str(root / "joints.mat"))["joints"]
    src = LspSource(root / "joints.mat", None, LSP14, 0.75)
    assert src.variant == "lsp" and len(src.instances) == 3
    assert Path(src.instances[0].image_path).name == "im0001.jpg"
    # every annotated joint is labelled, occluded or not; the flag is kept inverted (1 = visible)
    assert src.instances[0].visible.all()
    np.testing.assert_array_equal(src.instances[0].extra["visible_flag"], 1 - joints[2, :, 0])
    np.testing.assert_allclose(src.instances[0].keypoints, joints[:2, :, 0].T, rtol=1e-6)
    assert src.instances[1].visible[0] == 0 and src.instances[1].visible[1:].all()
    sel = LspSource(root / "joints.mat", root / "images", LSP14, 0.75, first=2, last=3)
    assert [i.image_id for i in sel.instances] == [2, 3]


def test_lsp_malformed(tmp_path):
    root = _lsp_original(tmp_path)
    with pytest.raises(DataError, match="first/last"):
        LspSource(root / "joints.mat", None, LSP14, 0.75, first=2, last=7)
    bad = tmp_path / "bad.mat"
    scipy.io.savemat(str(bad), {"joints": np.zeros((3, 13, 4))})
    with pytest.raises(DataError, match=r"bad\.mat: joints: expected shape"):
        LspSource(bad, root / "images", LSP14, 0.75)
    scipy.io.savemat(str(bad), {"points": np.zeros((3, 14, 4))})
    with pytest.raises(DataError, match=r"bad\.mat: joints: missing"):
        LspSource(bad, root / "images", LSP14, 0.75)
    (root / "images" / "im0002.jpg").unlink()
    with pytest.raises(DataError, match="im0002.jpg"):
        LspSource(root / "joints.mat", None, LSP14, 0.75)
    # no joints labelled at all (LSPET orientation, flags 0) → nothing usable
    empty = tmp_path / "empty.mat"
    j = np.zeros((14, 3, 2))
    scipy.io.savemat(str(empty), {"joints": j})
    with pytest.raises(DataError, match="no usable person instances.*too_few_joints: 2"):
        LspSource(empty, root / "images", LSP14, 0.75)


def test_lsp_non_finite_joints_are_unlabelled_and_counted(tmp_path):
    root = _lsp_original(tmp_path)
    original = scipy.io.loadmat(str(root / "joints.mat"))["joints"]
    joints = original.copy()
    joints[0, 3, 0] = np.nan  # LSP: every joint claims a label, whatever its flag
    joints[2, 4, 0] = np.nan
    scipy.io.savemat(str(root / "joints.mat"), {"joints": joints})
    src = LspSource(root / "joints.mat", None, LSP14, 0.75)
    assert src.skipped == {"non_finite_joints": 2}
    np.testing.assert_array_equal(src.instances[0].visible[2:6], [1, 0, 0, 1])
    assert np.isfinite(src.instances[0].keypoints).all()
    lspet = np.ascontiguousarray(original.transpose(1, 0, 2))  # (14, 3, N), third column 1 = labelled
    lspet[:, 2, :] = 1.0
    lspet[3, 0, 1] = np.inf
    lspet[6, :, 1] = [np.nan, np.nan, 0.0]  # not labelled: nothing to count
    scipy.io.savemat(str(tmp_path / "lspet.mat"), {"joints": lspet})
    src = LspSource(tmp_path / "lspet.mat", root / "images", LSP14, 0.75)
    # image 2's right ankle at (-1, -1) is the one non-positive joint
    assert src.variant == "lspet" and src.skipped == {"non_finite_joints": 1, "joints_nonpositive": 1}
    np.testing.assert_array_equal(src.instances[1].visible[[0, 3, 6]], [0, 0, 0])
    assert np.isfinite(src.instances[1].keypoints).all()


def _cell_array() -> np.ndarray:
    cells = np.empty((1, 2), dtype=object)
    cells[0, 0], cells[0, 1] = np.zeros((14, 3)), np.zeros(5)
    return cells


@pytest.mark.parametrize("joints, kind", [("abc", "text"), (_cell_array(), "a cell array")], ids=["text", "cell"])
def test_lsp_joints_not_a_numeric_array(tmp_path, joints, kind):
    root = _lsp_original(tmp_path)
    bad = tmp_path / "bad.mat"
    scipy.io.savemat(str(bad), {"joints": joints})
    err = _data_error(LspSource, bad, root / "images", LSP14, 0.75)
    assert f"bad.mat: joints: expected a numeric array, got {kind}" in str(err)


# ----------------------------------------------------------------------------- MPII
def _mpii(tmp_path: Path, n: int = 3):
    rng = np.random.default_rng(0)
    entries = []
    for i in range(n):
        joints = rng.uniform(20, 100, (16, 2))
        vis = np.ones(16)
        vis[i] = 0
        joints[i] = -1 if i == 0 else joints[i]  # HRNet's JSON has -1 for unlabelled joints
        entries.append({"image": f"{i:09d}.jpg", "center": [60.0 + i, 55.0], "scale": 0.5 + 0.1 * i,
                        "joints": joints.tolist(), "joints_vis": vis.tolist()})
        _write_image(tmp_path / "images" / f"{i:09d}.jpg", 128, 128)
    ann = tmp_path / "mpii_val.json"
    ann.write_text(json.dumps(entries))
    headboxes = np.zeros((2, 2, n))
    headboxes[0] = [[10.0] * n, [10.0] * n]
    headboxes[1] = [[40.0] * n, [50.0] * n]  # head box 30 x 40 → head size 0.6 * 50 = 30
    mat = tmp_path / "mpii_gt_val.mat"
    scipy.io.savemat(str(mat), {"headboxes_src": headboxes, "jnt_visible": np.ones((16, n)),
                                "pos_gt_src": np.zeros((16, 2, n))})
    return ann, mat, entries


def test_mpii_json_conventions_and_pckh(tmp_path):
    ann, mat, entries = _mpii(tmp_path)
    src = build_source(DatasetConfig(type="mpii", ann_file=str(ann), img_dir=str(tmp_path / "images"),
                                     headbox_file=str(mat)), MPII16, (256, 256), train=False)
    assert len(src.instances) == 3 and src.main_metric == "PCKh"
    inst = src.instances[1]
    e = entries[1]
    np.testing.assert_allclose(inst.center, [e["center"][0] - 1, e["center"][1] + 15 * e["scale"] - 1], rtol=1e-6)
    np.testing.assert_allclose(inst.scale, [e["scale"] * 200 * 1.25] * 2, rtol=1e-6)
    np.testing.assert_allclose(inst.keypoints[0], np.array(e["joints"][0]) - 1, rtol=1e-6)
    assert inst.visible[1] == 0 and inst.visible.sum() == 15
    # a 256 x 192 input: the square box grows in height to keep w / h = 0.75
    src43 = MpiiSource(ann, tmp_path / "images", MPII16, 0.75, headbox_file=mat)
    assert src43.instances[0].scale[0] / src43.instances[0].scale[1] == pytest.approx(0.75)
    gt = np.stack([i.keypoints for i in src.instances]).astype(np.float64)
    idx = np.arange(3)
    assert src.evaluate(gt, np.ones((3, 16)), idx)["PCKh"] == pytest.approx(1.0)
    off = gt + np.array([16.0, 0.0])  # 16 px > 0.5 x head size 30
    assert src.evaluate(off, np.ones((3, 16)), idx)["PCKh"] == pytest.approx(0.0)
    # without head boxes there is no PCKh
    nohead = MpiiSource(ann, tmp_path / "images", MPII16, 1.0)
    with pytest.raises(DataError, match="headbox_file"):
        nohead.evaluate(gt, np.ones((3, 16)), idx)


def test_mpii_malformed(tmp_path):
    ann, mat, entries = _mpii(tmp_path)
    bad = [dict(e) for e in entries]
    bad[2]["joints"] = bad[2]["joints"][:14]
    ann.write_text(json.dumps(bad))
    with pytest.raises(DataError, match=r"mpii_val\.json: \[2\]\.joints: expected 16"):
        MpiiSource(ann, tmp_path / "images", MPII16, 1.0)
    bad = [dict(e) for e in entries]
    del bad[0]["center"]
    ann.write_text(json.dumps(bad))
    with pytest.raises(DataError, match=r"\[0\]\.center: missing"):
        MpiiSource(ann, tmp_path / "images", MPII16, 1.0)
    bad = [dict(e) for e in entries]
    bad[1]["scale"] = 0
    ann.write_text(json.dumps(bad))
    src = MpiiSource(ann, tmp_path / "images", MPII16, 1.0)
    assert src.skipped == {"zero_area_box": 1} and len(src.instances) == 2
    ann.write_text(json.dumps(entries[:2]))
    with pytest.raises(DataError, match="headboxes_src.*3 head boxes for 2 entries"):
        MpiiSource(ann, tmp_path / "images", MPII16, 1.0, headbox_file=mat)


def test_mpii_non_finite_boxes_are_skipped_and_joints_unlabelled(tmp_path):
    ann, mat, entries = _mpii(tmp_path, n=4)
    entries[0]["center"] = [float("nan"), 80.0]
    entries[1]["scale"] = float("nan")
    entries[2]["joints"][5] = [float("nan"), 50.0]  # labelled in joints_vis
    ann.write_text(json.dumps(entries))
    src = MpiiSource(ann, tmp_path / "images", MPII16, 1.0, headbox_file=mat)
    assert src.skipped == {"non_finite_box": 2, "non_finite_joints": 1}
    assert [i.instance_id for i in src.instances] == [2, 3]
    assert src.instances[0].visible[5] == 0 and np.isfinite(src.instances[0].keypoints).all()
    gt = np.stack([i.keypoints for i in src.instances]).astype(np.float64)
    assert src.evaluate(gt, np.ones((2, 16)), np.arange(2))["PCKh"] == pytest.approx(1.0)


def test_read_image_refuses_truncated_jpegs_folders_and_empty_files(tmp_path, capfd):
    image = np.random.default_rng(0).integers(0, 255, (64, 48, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", image)
    whole = tmp_path / "whole.jpg"
    whole.write_bytes(data.tobytes())
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(data.tobytes() + b"\x00" * 16)
    assert read_image(whole).shape == (64, 48, 3)
    assert np.array_equal(read_image(padded), read_image(whole))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data.tobytes()[: len(data) // 2])
    assert cv2.imread(str(cut)) is not None  # what OpenCV alone does: grey rows, a warning
    capfd.readouterr()
    with pytest.raises(DataError, match=r"cut\.jpg: image: truncated JPEG"):
        read_image(cut)
    with pytest.raises(DataError, match=r"is a folder, not an image file"):
        read_image(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.png: image: empty file"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(DataError, match=r"gone\.jpg: image: image file not found"):
        read_image(tmp_path / "gone.jpg")
    assert "WARN" not in capfd.readouterr().err  # OpenCV's own lines are not shown


def _png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose header (IHDR, with a valid checksum) declares width x height."""
    data = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes()
    ihdr = b"IHDR" + struct.pack(">II", width, height) + data[24:29]
    return data[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]


def _jpeg_declaring(width: int, height: int) -> bytes:
    data = cv2.imencode(".jpg", np.zeros((4, 4, 3), np.uint8))[1].tobytes()
    sof = data.index(b"\xff\xc0")  # baseline start of frame: length, precision, height, width
    return data[:sof + 5] + struct.pack(">HH", height, width) + data[sof + 9:]


def _jpeg_cut_behind_a_fake_end_marker() -> bytes:
    image = np.random.default_rng(0).integers(0, 255, (64, 48, 3), dtype=np.uint8)
    data = cv2.imencode(".jpg", image)[1].tobytes()
    return data[: len(data) // 2] + b"\xff\xd9"


@pytest.mark.parametrize("name, data", [("huge.png", _png_declaring(50000, 50000)),
                                        ("huge.jpg", _jpeg_declaring(50000, 50000)),
                                        ("tall.png", _png_declaring(20, 30000))], ids=["png", "jpeg", "one_side"])
def test_read_image_refuses_what_declares_too_many_pixels(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    err = _data_error(read_image, path)
    assert f"{name}: image: declares " in str(err)


def test_read_image_refuses_a_jpeg_cut_behind_a_fake_end_marker(tmp_path, capfd):
    data = _jpeg_cut_behind_a_fake_end_marker()
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None  # OpenCV alone: grey rows
    capfd.readouterr()
    path = tmp_path / "fake_end.jpg"
    path.write_bytes(data)
    err = _data_error(read_image, path)
    assert "fake_end.jpg: image: damaged JPEG data (Corrupt JPEG data: premature end of data segment)" in str(err)
    assert capfd.readouterr().err == ""  # libjpeg's warning, which names no file, is not shown


@pytest.mark.parametrize("data", [_png_declaring(50000, 50000), _jpeg_cut_behind_a_fake_end_marker()],
                         ids=["huge_png", "fake_end_jpeg"])
def test_data_show_names_the_bad_image_in_one_line(tmp_path, data):
    ann, img_dir = _coco(tmp_path, [_ann(1)], images=[{"id": 1, "file_name": "a.jpg"}], write_images=False)
    img_dir.mkdir()
    (img_dir / "a.jpg").write_bytes(data)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"data": {"train": {"type": "coco", "ann_file": str(ann), "img_dir": str(img_dir)}}}))
    proc = subprocess.run([sys.executable, "-m", "slimpose", "data", "show", str(config), "--num", "1",
                           "--out", str(tmp_path / "show.png")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{img_dir / 'a.jpg'}: image: " in lines[0], proc.stderr
