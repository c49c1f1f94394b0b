"""COCO metrics: OKS, OKS-NMS, detection-mode rescoring, pycocotools evaluation."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slimpose.errors import DataError
from slimpose.keypoints import COCO17
from slimpose.metrics.coco import (
    RESCORE_KPT_THR,
    STAT_NAMES,
    coco_keypoint_eval,
    coco_topdown_results,
    evaluate_results_file,
    oks_iou,
    oks_nms,
    person_scores,
)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
VAL_ANN = SHARED_DATA / "coco-mini" / "annotations" / "person_keypoints_val2017.json"
SIGMAS = COCO17.sigmas_array()


def _pose(rng, cx=100.0, cy=100.0, spread=40.0):
    xy = np.stack([cx + rng.uniform(-spread, spread, 17), cy + rng.uniform(-2 * spread, 2 * spread, 17)], axis=1)
    return np.concatenate([xy, np.ones((17, 1))], axis=1)


# --------------------------------------------------------------------------- OKS / NMS


def test_oks_iou_values():
    rng = np.random.default_rng(0)
    g = _pose(rng)
    same = oks_iou(g, g[None], 5000.0, np.array([5000.0]), SIGMAS)
    np.testing.assert_allclose(same, [1.0])
    # Shift every joint by d: OKS = mean(exp(-d^2 / (2 * s * (2 sigma)^2))), s = mean area.
    d = 3.0
    moved = g.copy()
    moved[:, 0] += d
    area_g, area_d = 4000.0, 6000.0
    s = (area_g + area_d) / 2 + np.spacing(1)
    want = np.mean(np.exp(-(d**2) / (2 * s * (2 * SIGMAS) ** 2)))
    np.testing.assert_allclose(oks_iou(g, moved[None], area_g, np.array([area_d]), SIGMAS), [want])
    # vis_thr: only joints confident in both poses count
    moved[:8, 2] = 0.0
    want_vis = np.mean(np.exp(-(d**2) / (2 * s * (2 * SIGMAS[8:]) ** 2)))
    np.testing.assert_allclose(oks_iou(g, moved[None], area_g, np.array([area_d]), SIGMAS, vis_thr=0.5), [want_vis])
    assert oks_iou(g, np.zeros((0, 17, 3)), 1.0, np.zeros(0), SIGMAS).shape == (0,)


def test_oks_nms_drops_duplicate_keeps_distinct():
    rng = np.random.default_rng(1)
    a = _pose(rng, 100, 150)
    dup = a.copy()
    dup[:, :2] += rng.normal(0, 0.5, (17, 2))
    other = _pose(rng, 400, 150)
    kpts = np.stack([dup, a, other])
    scores = np.array([0.7, 0.9, 0.8])
    areas = np.full(3, 120.0 * 250.0)
    assert oks_nms(kpts, scores, areas, SIGMAS, thr=0.9) == [1, 2]
    # a strict threshold above the duplicate's OKS keeps everything
    assert sorted(oks_nms(kpts, scores, areas, SIGMAS, thr=1.0)) == [0, 1, 2]
    assert oks_nms(np.zeros((0, 17, 3)), np.zeros(0), np.zeros(0), SIGMAS) == []


def test_topdown_results_rescore_and_nms():
    rng = np.random.default_rng(2)
    a = _pose(rng, 100, 150)[:, :2]
    b = a + 0.3  # near duplicate of a
    c = _pose(rng, 400, 150)[:, :2]
    kpts = np.stack([a, b, c, c])
    ks = np.full((4, 17), 0.1)
    ks[0, :5] = 0.9  # mean of scores above 0.2 = 0.9
    ks[1, :] = 0.5
    ks[2, :10] = 0.6
    # entry 3: no keypoint score above 0.2 -> score 0
    box = np.array([0.8, 1.0, 0.5, 0.9])
    areas = np.full(4, 30000.0)
    img = np.array([7, 7, 7, 9])
    res = coco_topdown_results(img, kpts, ks, box, areas, SIGMAS)
    # image 7: b (0.5) vs a (0.72): a kept, b suppressed; c kept (0.3). Image 9: d with score 0.
    assert [r["image_id"] for r in res] == [7, 7, 9]
    np.testing.assert_allclose([r["score"] for r in res], [0.72, 0.3, 0.0])
    r0 = res[0]
    assert set(r0) == {"image_id", "category_id", "keypoints", "score"}
    assert r0["category_id"] == 1 and type(r0["image_id"]) is int
    assert len(r0["keypoints"]) == 51 and all(type(v) is float for v in r0["keypoints"])
    np.testing.assert_allclose(np.reshape(r0["keypoints"], (17, 3))[:, :2], a)
    np.testing.assert_allclose(np.reshape(r0["keypoints"], (17, 3))[:, 2], ks[0])
    json.dumps(res)
    # no rescoring, no NMS
    res2 = coco_topdown_results(img, kpts, ks, box, areas, SIGMAS, rescore=False, nms=False, category_id=3)
    assert len(res2) == 4 and {r["category_id"] for r in res2} == {3}
    np.testing.assert_allclose(sorted(r["score"] for r in res2), sorted(box))


def test_person_scores_average_only_keypoints_above_the_threshold():
    assert RESCORE_KPT_THR == 0.2
    ks = np.array([[0.9, 0.5, 0.2, 0.1],  # 0.2 itself does not count: mean of 0.9, 0.5
                   [0.2, 0.2, 0.0, 0.1],  # none above: 0
                   [0.3, 0.3, 0.3, 0.3]])
    np.testing.assert_allclose(person_scores([0.5, 1.0, 2.0], ks), [0.35, 0.0, 0.6])
    np.testing.assert_allclose(person_scores([1.0], ks[:1], kpt_score_thr=0.6), [0.9])
    with pytest.raises(ValueError, match="keypoint scores"):
        person_scores([1.0, 1.0], ks)
    # the evaluation ranks people by the same scores
    res = coco_topdown_results([1, 2, 3], np.zeros((3, 4, 2)), ks, [0.5, 1.0, 2.0], np.ones(3), np.full(4, 0.1),
                               nms=False)
    np.testing.assert_allclose([r["score"] for r in res], [0.35, 0.0, 0.6])


# --------------------------------------------------------------------------- evaluation on coco-mini

needs_data = pytest.mark.skipif(not VAL_ANN.is_file(), reason=f"{VAL_ANN} not found (../shared/data)")


def _gt_results():
    data = json.loads(VAL_ANN.read_text())
    out = []
    for a in data["annotations"]:
        if a["num_keypoints"] > 0:
            kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3)
            kp[:, 2] = (kp[:, 2] > 0).astype(np.float64)
            out.append({"image_id": a["image_id"], "category_id": 1,
                        "keypoints": kp.reshape(-1).tolist(), "score": 1.0})
    return out


@pytest.mark.realdata
@needs_data
def test_ground_truth_scores_ap_1(tmp_path):
    res = _gt_results()
    assert len(res) == 68
    path = tmp_path / "gt_results.json"
    path.write_text(json.dumps(res))
    stats = evaluate_results_file(VAL_ANN, path)
    assert set(stats) == set(STAT_NAMES)
    assert stats["AP"] == pytest.approx(1.0)
    assert stats["AR"] == pytest.approx(1.0)
    assert stats["AP50"] == pytest.approx(1.0) and stats["AP75"] == pytest.approx(1.0)


@pytest.mark.realdata
@needs_data
def test_perturbed_results_match_direct_pycocotools(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(1234)
    res = _gt_results()
    for r in res:
        kp = np.asarray(r["keypoints"]).reshape(-1, 3)
        kp[:, :2] += rng.normal(0.0, 6.0, (kp.shape[0], 2))
        kp[:, 2] = rng.uniform(0, 1, kp.shape[0])
        r["keypoints"] = kp.reshape(-1).tolist()
        r["score"] = float(rng.uniform(0.05, 1.0))
    path = tmp_path / "noisy_results.json"
    path.write_text(json.dumps(res))

    stats = evaluate_results_file(str(VAL_ANN), str(path))

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(VAL_ANN))
        dt = gt.loadRes(str(path))
        ev = COCOeval(gt, dt, iouType="keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert [stats[k] for k in STAT_NAMES] == [float(v) for v in ev.stats]
    assert 0.0 < stats["AP"] < 1.0

    # A COCO object and a results list give the same numbers, quietly.
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        again = coco_keypoint_eval(gt, json.loads(path.read_text()), sigmas=COCO17.sigmas_array())
    assert again == stats and buf.getvalue() == ""


def _write(tmp_path, obj, name="bad.json"):
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return p


@pytest.mark.realdata
@needs_data
def test_malformed_results_raise_data_error(tmp_path):
    good = _gt_results()[:3]

    def check(entries, field, *words):
        path = _write(tmp_path, entries)
        with pytest.raises(DataError) as info:
            evaluate_results_file(VAL_ANN, path)
        err = info.value
        assert err.field == field and err.source == str(path)
        for w in words:
            assert w in err.problem

    missing = [dict(r) for r in good]
    del missing[1]["keypoints"]
    check(missing, "keypoints", "entry 1", "missing")

    short = [dict(r) for r in good]
    short[2]["keypoints"] = short[2]["keypoints"][:-1]
    check(short, "keypoints", "entry 2", "51", "50")

    unknown = [dict(r) for r in good]
    unknown[0]["image_id"] = 999999999
    check(unknown, "image_id", "entry 0", "999999999")

    nan = [dict(r) for r in good]
    nan[1]["keypoints"] = ["a"] + nan[1]["keypoints"][1:]
    check(nan, "keypoints", "entry 1")

    noscore = [dict(r) for r in good]
    del noscore[0]["score"]
    check(noscore, "score", "entry 0")

    check([], "results", "empty")
    check({"image_id": 1}, "results")

    with pytest.raises(DataError) as info:
        coco_keypoint_eval(VAL_ANN, [])
    assert info.value.field == "results"

    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    with pytest.raises(DataError) as info:
        evaluate_results_file(VAL_ANN, broken)
    assert info.value.field == "results"

    with pytest.raises(DataError) as info:
        evaluate_results_file(VAL_ANN, tmp_path / "nope.json")
    assert info.value.field == "results"
    with pytest.raises(DataError) as info:
        evaluate_results_file(tmp_path / "no_ann.json", _write(tmp_path, good, "ok.json"))
    assert info.value.field == "annotations"


@pytest.mark.realdata
@needs_data
def test_category_id_may_be_omitted(tmp_path):
    res = _gt_results()
    for r in res:
        del r["category_id"]
    assert coco_keypoint_eval(VAL_ANN, res)["AP"] == pytest.approx(1.0)


@pytest.mark.realdata
@needs_data
def test_results_of_another_layout_are_scored_on_the_shared_joints(tmp_path):
    """An LSP-14 model's results on COCO persons: OKS over the 12 body joints both layouts
    name; the LSP-only joints (neck, head top) and COCO's face joints do not count."""
    from slimpose.keypoints import LSP14

    coco_index = {n: i for i, n in enumerate(COCO17.names)}
    perfect, off_face = [], []
    for r in _gt_results():
        kp = np.asarray(r["keypoints"]).reshape(17, 3)
        if not kp[5:, 2].any():  # only face joints visible: nothing left to score on the body joints
            continue
        lsp = np.zeros((14, 3))
        for j, name in enumerate(LSP14.names):
            lsp[j] = kp[coco_index[name]] if name in coco_index else (1e4, 1e4, 1.0)  # neck / head top: far off
        perfect.append({**r, "keypoints": lsp.reshape(-1).tolist()})
    path = tmp_path / "lsp_results.json"
    path.write_text(json.dumps(perfect))
    stats = evaluate_results_file(VAL_ANN, path, layout="lsp")
    assert stats["joints"] == [n for n in COCO17.names if n in LSP14.names] and len(stats["joints"]) == 12
    assert stats["AP"] == pytest.approx(1.0)
    # the same file read as COCO-17 results is refused (14 keypoints, not 17)
    with pytest.raises(DataError, match="expected 51 values"):
        evaluate_results_file(VAL_ANN, path)
    with pytest.raises(DataError, match="expected 48 values for layout 'mpii'"):
        evaluate_results_file(VAL_ANN, path, layout="mpii")
    # moving a shared body joint far off lowers AP; moving the unshared joints did not
    for r in perfect:
        kp = np.asarray(r["keypoints"]).reshape(14, 3)
        kp[0, :2] += 1e4  # right ankle
        off_face.append({**r, "keypoints": kp.reshape(-1).tolist()})
    path.write_text(json.dumps(off_face))
    assert evaluate_results_file(VAL_ANN, path, layout="lsp")["AP"] < 1.0


# --------------------------------------------------------------------------- annotation files given to eval --ann


def _person(ann_id=1, image_id=1, dx=0.0):
    """A person annotation with all 17 joints labelled, moved dx pixels along x."""
    kp = [[100.0 + 3 * j + dx, 50.0 + 10 * j, 2] for j in range(17)]
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": [90 + dx, 40, 80, 200],
            "area": 8000.0, "num_keypoints": 17, "keypoints": [v for p in kp for v in p]}


def _ground_truth_file(tmp_path, annotations, image_ids=(1,), name="ann.json"):
    path = tmp_path / name
    path.write_text(json.dumps({
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 300, "height": 300} for i in image_ids],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17.names), "skeleton": []}]}))
    return path


def _results_file(tmp_path, image_id=1, dx=0.0, name="results.json"):
    """One result: _person(dx=dx)'s joints."""
    kp = [[100.0 + 3 * j + dx, 50.0 + 10 * j, 0.9] for j in range(17)]
    path = tmp_path / name
    path.write_text(json.dumps([{"image_id": image_id, "category_id": 1, "keypoints": [v for p in kp for v in p],
                                 "score": 0.9}]))
    return path


def _eval_cli(ann, results, layout=None):
    layout_args = ["--layout", layout] if layout else []
    return subprocess.run([sys.executable, "-m", "slimpose", "eval", "--ann", str(ann), "--results", str(results),
                           *layout_args], capture_output=True, text=True, timeout=120)


def _edit_result(path, layout, edit):
    """Apply ``edit`` to the one result in ``path``, cut to 14 joints for layout "lsp"."""
    entries = json.loads(path.read_text())
    if layout == "lsp":
        entries[0]["keypoints"] = entries[0]["keypoints"][:42]
    edit(entries[0])
    path.write_text(json.dumps(entries))


def _assert_one_line_error(proc, source, field):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{source}: {field}:" in lines[0], proc.stderr


def _set(key, index, value):
    """An edit of an annotation or result: ``entry[key][index] = value``."""
    return lambda entry: entry[key].__setitem__(index, value)


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("mutate, field", [
    (_set("keypoints", slice(15, 18), [NAN, 90.0, 2]), "annotations[0].keypoints"),  # left shoulder
    (_set("keypoints", slice(None), [NAN, NAN, 2] * 17), "annotations[0].keypoints"),
    (_set("keypoints", 2, INF), "annotations[0].keypoints"),
    (_set("bbox", 2, NAN), "annotations[0].bbox"),
], ids=["nan_joint", "all_joints_nan", "infinite_flag", "nan_box"])
def test_eval_refuses_non_finite_ground_truth(tmp_path, mutate, field):
    """A NaN OKS matches any prediction in COCOeval: results 200 px off scored AP 1.0."""
    person = _person()
    mutate(person)
    ann = _ground_truth_file(tmp_path, [person])
    proc = _eval_cli(ann, _results_file(tmp_path, dx=200.0))
    _assert_one_line_error(proc, ann, field)
    assert "not finite" in proc.stderr


@pytest.mark.parametrize("mutate, field", [
    (lambda a: a.pop("keypoints"), "annotations[0].keypoints"),
    (lambda a: a.update(keypoints=a["keypoints"][:48]), "annotations[0].keypoints"),
    (lambda a: a.update(area="big"), "annotations[0].area"),
    (lambda a: a.update(image_id=[1]), "annotations[0].image_id"),
    (lambda a: a.update(image_id="1"), "annotations[0].image_id"),
    (lambda a: a.update(category_id=[1]), "annotations[0].category_id"),
], ids=["no_keypoints", "48_values", "string_area", "list_image_id", "string_image_id", "list_category_id"])
def test_eval_malformed_ground_truth_is_one_line(tmp_path, mutate, field):
    person = _person()
    mutate(person)
    ann = _ground_truth_file(tmp_path, [person])
    _assert_one_line_error(_eval_cli(ann, _results_file(tmp_path)), ann, field)


@pytest.mark.parametrize("image_id", [[1], "1", 1.5], ids=["list", "string", "fraction"])
@pytest.mark.parametrize("layout", [None, "lsp"])
def test_eval_results_image_id_not_an_integer_is_one_line(tmp_path, image_id, layout):
    ann = _ground_truth_file(tmp_path, [_person()])
    results = _results_file(tmp_path)
    _edit_result(results, layout, lambda r: r.update(image_id=image_id))
    proc = _eval_cli(ann, results, layout)
    _assert_one_line_error(proc, results, "image_id")
    assert "entry 0: expected an integer id" in proc.stderr


def _eval_cli_ap(tmp_path, ann, results) -> float:
    out = tmp_path / "metrics.json"
    proc = subprocess.run([sys.executable, "-m", "slimpose", "eval", "--ann", str(ann), "--results", str(results),
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())["AP"]


def _perfect_results(tmp_path, image_ids, name="perfect.json"):
    path = tmp_path / name
    path.write_text(json.dumps([json.loads(_results_file(tmp_path, image_id=i).read_text())[0] for i in image_ids]))
    return path


def test_eval_scores_zero_based_ids(tmp_path):
    """COCOeval takes a match with annotation id 0 for no match: perfect results scored AP 0."""
    ann = _ground_truth_file(tmp_path, [_person(ann_id=0, image_id=0), _person(ann_id=1, image_id=1)],
                             image_ids=(0, 1))
    assert _eval_cli_ap(tmp_path, ann, _perfect_results(tmp_path, (0, 1))) == pytest.approx(1.0)
    far = _results_file(tmp_path, image_id=0, dx=200.0, name="far.json")
    assert _eval_cli_ap(tmp_path, ann, far) == pytest.approx(0.0)


def test_eval_derives_what_real_exports_leave_out(tmp_path):
    """No num_keypoints, area or iscrowd (pycocotools raised KeyError); an image id written
    from a float array (1.0) is image 1."""
    persons = [_person(ann_id=1, image_id=1), _person(ann_id=2, image_id=2)]
    for p in persons:
        for key in ("num_keypoints", "area", "iscrowd"):
            del p[key]
    ann = _ground_truth_file(tmp_path, persons, image_ids=(1, 2))
    assert _eval_cli_ap(tmp_path, ann, _perfect_results(tmp_path, (1.0, 2))) == pytest.approx(1.0)


def test_eval_scores_every_person_of_duplicate_annotation_ids(tmp_path):
    """pycocotools indexes annotations by id: two persons with one id were scored as one, twice."""
    persons = [_person(ann_id=7), _person(ann_id=7, dx=100.0)]
    ann = _ground_truth_file(tmp_path, persons)
    both = tmp_path / "both.json"
    both.write_text(json.dumps([json.loads(_results_file(tmp_path, dx=dx).read_text())[0] for dx in (0.0, 100.0)]))
    assert _eval_cli_ap(tmp_path, ann, both) == pytest.approx(1.0)


@pytest.mark.parametrize("value", [NAN, INF, "a"], ids=["nan", "inf", "text"])
@pytest.mark.parametrize("layout", [None, "lsp"])
def test_eval_refuses_non_finite_predictions(tmp_path, value, layout):
    """Refused already without --layout; with it, the message named "<results>", not the
    file (NaN, infinity), or was a traceback (text)."""
    ann = _ground_truth_file(tmp_path, [_person()])
    results = _results_file(tmp_path)
    _edit_result(results, layout, _set("keypoints", 4, value))
    proc = _eval_cli(ann, results, layout)
    _assert_one_line_error(proc, results, "keypoints")
    assert "entry 0" in proc.stderr


# --------------------------------------------------------------------------- eval --results --joints

ABCD = ["a", "b", "c", "d"]
ABCD_XY = np.array([[50.0, 20.0], [40.0, 80.0], [60.0, 80.0], [50.0, 150.0]])  # in a 100 x 200 box at (0, 0)


def _abcd_person(ann_id, image_id, x0=0.0):
    kp = np.concatenate([ABCD_XY + [x0, 0.0], np.full((4, 1), 2.0)], axis=1)
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": [x0, 0.0, 100.0, 200.0],
            "area": 20000.0, "num_keypoints": 4, "keypoints": kp.reshape(-1).tolist()}


def _abcd_result(image_id, score, x0=0.0, dx=(0.0, 0.0, 0.0, 0.0)):
    kp = np.concatenate([ABCD_XY + [x0, 0.0], np.ones((4, 1))], axis=1)
    kp[:, 0] += dx
    return {"image_id": image_id, "category_id": 1, "score": score, "keypoints": kp.reshape(-1).tolist()}


def _abcd_files(tmp_path, people, results):
    ann = tmp_path / "abcd.json"
    ann.write_text(json.dumps({
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 400, "height": 300} for i in (1, 2, 3)],
        "annotations": people,
        "categories": [{"id": 1, "name": "critter", "keypoints": ABCD, "skeleton": []}]}))
    res = tmp_path / "abcd_results.json"
    res.write_text(json.dumps(results))
    return ann, res


def test_joints_score_oks_ap_on_a_subset_by_hand(tmp_path):
    """Two persons; the result of image 2 is 15 and 30 px off on b and c, 1e4 off on d.
    Over a, b, c with the default sigma 0.067 and area 20000:
    OKS = (1 + exp(-15^2 / (2 (2 * 0.067)^2 20000)) + exp(-30^2 / ...)) / 3 = 0.672, so
    at the thresholds 0.50 ... 0.65 both results match (AP 1) and at 0.70 ... 0.95 only
    the better-scored one (precision 1 up to recall 0.5: 51 of COCOeval's 101 recall points)."""
    ann, res = _abcd_files(tmp_path, [_abcd_person(1, 1), _abcd_person(2, 2)],
                           [_abcd_result(1, 0.9), _abcd_result(2, 0.8, dx=(0.0, 15.0, 30.0, 1e4))])
    e = np.array([0.0, 15.0, 30.0]) ** 2 / (2 * (2 * 0.067) ** 2 * 20000.0)
    assert np.exp(-e).mean() == pytest.approx(0.6722, abs=1e-4)
    stats = evaluate_results_file(ann, res, joints=["a", "b", "c"])
    assert stats["joints"] == ["a", "b", "c"]
    assert stats["AP"] == pytest.approx((4 * 1.0 + 6 * 51 / 101) / 10)
    # PCK over a, b, c normalised by the box's longer side, 200: 15 px = 0.075, 30 px = 0.15
    assert stats["PCK"] == pytest.approx(1.0) and stats["PCK@0.1"] == pytest.approx(5 / 6)
    # all four joints: d is 1e4 px off, OKS (1 + 0.731 + 0.286 + 0) / 4 = 0.504 matches at 0.50 only
    assert evaluate_results_file(ann, res)["AP"] == pytest.approx((1.0 + 9 * 51 / 101) / 10)


def test_joints_pck_matches_each_result_to_its_person_and_counts_the_unmatched_wrong(tmp_path):
    people = [_abcd_person(1, 1), _abcd_person(2, 2), _abcd_person(3, 3), _abcd_person(4, 3, x0=250.0)]
    results = [_abcd_result(1, 0.9), _abcd_result(2, 0.8, dx=(0.0, 15.0, 30.0, 0.0)),
               _abcd_result(3, 0.5, x0=250.0)]  # image 3: only the right-hand person has a result
    ann, res = _abcd_files(tmp_path, people, results)
    stats = evaluate_results_file(ann, res, joints=["c", "a", "b"])
    assert stats["joints"] == ["c", "a", "b"]
    assert stats["PCK"] == pytest.approx(9 / 12) and stats["PCK@0.1"] == pytest.approx(8 / 12)
    # one joint: d, exact everywhere a result is
    assert evaluate_results_file(ann, res, joints=["d"])["PCK"] == pytest.approx(3 / 4)


def test_joints_of_a_coco_file_use_cocos_sigmas_and_unknown_names_are_refused(tmp_path):
    ann = _ground_truth_file(tmp_path, [_person()])
    res = _results_file(tmp_path, dx=2.0)
    body = list(COCO17.names[5:])
    stats = evaluate_results_file(ann, res, joints=body)
    assert stats["joints"] == body and stats["PCK"] == pytest.approx(1.0)
    assert stats["AP"] == pytest.approx(coco_keypoint_eval(ann, res)["AP"])  # 2 px: a match at every threshold
    from slimpose.errors import ConfigError

    with pytest.raises(ConfigError, match="joints: tail: not joint names; give distinct names of nose, "):
        evaluate_results_file(ann, res, joints=["nose", "tail"])
    with pytest.raises(ConfigError, match="joints: empty or repeated names"):
        evaluate_results_file(ann, res, joints=["nose", "nose"])


def test_eval_cli_scores_a_named_subset(tmp_path, capsys):
    from slimpose.cli import main

    ann, res = _abcd_files(tmp_path, [_abcd_person(1, 1), _abcd_person(2, 2)],
                           [_abcd_result(1, 0.9), _abcd_result(2, 0.8, dx=(0.0, 15.0, 30.0, 1e4))])
    out = tmp_path / "metrics.json"
    assert main(["eval", "--ann", str(ann), "--results", str(res), "--joints", "a, b,c", "--out", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["joints"] == ["a", "b", "c"] and metrics["PCK@0.1"] == pytest.approx(5 / 6)
    assert main(["eval", "--ann", str(ann), "--results", str(res), "--joints", "a,z"]) == 2
    assert "joints: z: not joint names" in capsys.readouterr().err
