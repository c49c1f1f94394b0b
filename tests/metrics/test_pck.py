"""PCK metrics on hand-built cases with known distances."""

from __future__ import annotations

import numpy as np
import pytest

from slimpose.keypoints import COCO17, LSP14, MPII16
from slimpose.metrics.pck import inversion_rate, keypoint_pck_accuracy, lsp_pck, mpii_head_sizes, mpii_pckh


def _offset(gt, errors):
    """pred = gt moved by errors[n][j] pixels along x."""
    pred = gt.copy()
    for n, errs in enumerate(errors):
        for j, e in errs.items():
            pred[n, j, 0] += e
    return pred


def test_keypoint_pck_accuracy_basic():
    gt = np.zeros((3, 3, 2))
    pred = gt.copy()
    pred[0, :, 0] = [1.0, 2.0, 3.0]  # norm 10: 0.1, 0.2, 0.3
    pred[1, :, 1] = [4.0, 0.0, 8.0]  # norm 20: 0.2, 0.0, 0.4
    pred[2, :, 0] = 100.0  # norm 0: excluded
    mask = np.ones((3, 3), dtype=bool)
    mask[1, 2] = False
    norm = np.array([10.0, 20.0, 0.0])
    per, mean, counts = keypoint_pck_accuracy(pred, gt, mask, 0.2, norm)
    np.testing.assert_array_equal(counts, [2, 2, 1])
    np.testing.assert_allclose(per, [0.5, 0.5, 0.0])  # 0.2 is not < 0.2
    assert mean == pytest.approx(2 / 5)
    per_i, mean_i, _ = keypoint_pck_accuracy(pred, gt, mask, 0.2, norm, inclusive=True)
    np.testing.assert_allclose(per_i, [1.0, 1.0, 0.0])
    assert mean_i == pytest.approx(4 / 5)
    # a joint nobody labelled gives NaN, not 0
    mask[:, 1] = False
    per, mean, counts = keypoint_pck_accuracy(pred, gt, mask, 0.5, norm)
    assert np.isnan(per[1]) and counts[1] == 0
    assert mean == pytest.approx(1.0)
    per, mean, counts = keypoint_pck_accuracy(pred, gt, np.zeros((3, 3), bool), 0.5, norm)
    assert np.isnan(per).all() and np.isnan(mean) and counts.sum() == 0


def test_mpii_head_sizes():
    boxes = np.array([[[10.0, 20.0], [40.0, 60.0]], [[0.0, 0.0], [6.0, 8.0]]])
    np.testing.assert_allclose(mpii_head_sizes(boxes), [30.0, 6.0])


def test_mpii_pckh_hand_built():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 200, (3, 16, 2)).astype(np.float64)
    mask = np.ones((3, 16), dtype=bool)
    mask[1, 15] = False  # left wrist of person 1 unlabelled
    head = np.array([10.0, 20.0, 0.0])  # person 2 has no head box: left out
    pred = _offset(gt, [
        # head 10 -> correct @0.5 when error <= 5, @0.1 when <= 1
        {0: 5.0, 1: 6.0, 6: 100.0, 7: 100.0, 9: 0.5, 10: 3.0},
        # head 20 -> correct @0.5 when error <= 10, @0.1 when <= 2
        {0: 11.0, 9: 2.0, 12: 10.0, 15: 1000.0},
        {j: 1000.0 for j in range(16)},
    ])
    out = mpii_pckh(pred, gt, mask, head)
    # 27 labelled pairs outside pelvis/thorax; @0.5 wrong: p0 j1, p1 j0.
    assert out["PCKh"] == pytest.approx(25 / 27)
    # @0.1 wrong: p0 j0, j1, j10; p1 j0, j12 (p1's head top at exactly 0.1 counts).
    assert out["PCKh@0.1"] == pytest.approx(22 / 27)
    assert out["Head"] == pytest.approx(1.0)  # head top only, as HRNet prints it
    assert out["Ankle"] == pytest.approx(0.75)
    assert out["Knee"] == pytest.approx(0.75)
    for g in ("Shoulder", "Elbow", "Wrist", "Hip"):
        assert out[g] == pytest.approx(1.0), g
    assert set(out) == {"PCKh", "PCKh@0.1", "Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle"}


def test_mpii_pckh_excludes_pelvis_and_thorax_only():
    gt = np.zeros((1, 16, 2))
    head = np.array([10.0])
    mask = np.ones((1, 16), dtype=bool)
    # only pelvis and thorax wrong: the mean is perfect
    out = mpii_pckh(_offset(gt, [{6: 50.0, 7: 50.0}]), gt, mask, head)
    assert out["PCKh"] == 1.0 and out["PCKh@0.1"] == 1.0
    # upper neck wrong: it is in the mean (1 of 14) but in no printed group
    out = mpii_pckh(_offset(gt, [{8: 50.0}]), gt, mask, head)
    assert out["PCKh"] == pytest.approx(13 / 14)
    assert out["Head"] == 1.0


def test_lsp_pck_torso_normalisation():
    gt = np.zeros((3, 14, 2))
    gt[:, :, 0] = np.arange(14) * 7.0
    gt[:, :, 1] = 50.0
    # person 0: left shoulder (9) to right hip (2) = 50 px; person 1: 100 px
    gt[0, 9] = [0.0, 0.0]
    gt[0, 2] = [30.0, 40.0]
    gt[1, 9] = [0.0, 0.0]
    gt[1, 2] = [60.0, 80.0]
    mask = np.ones((3, 14), dtype=bool)
    mask[1, 13] = False  # head top of person 1 unlabelled
    mask[2, 2] = False  # person 2: torso not labelled -> left out
    pred = _offset(gt, [
        # threshold 0.2 x 50 = 10 px (strict), 0.1 -> 5 px
        {0: 9.9, 1: 10.0, 13: 4.9, 12: 5.0, 9: 20.0},
        # 0.2 x 100 = 20 px, 0.1 -> 10 px; a wrong torso joint does not move the normaliser
        {0: 25.0, 6: 19.0, 13: 1000.0},
        {j: 1000.0 for j in range(14)},
    ])
    out = lsp_pck(pred, gt, mask)
    assert out["PCK"] == pytest.approx(24 / 27)
    assert out["PCK@0.1"] == pytest.approx(21 / 27)
    assert out["Head"] == pytest.approx(1.0)
    assert out["Ankle"] == pytest.approx(0.75)
    assert out["Knee"] == pytest.approx(0.75)
    assert out["Shoulder"] == pytest.approx(0.75)
    for g in ("Elbow", "Wrist", "Hip"):
        assert out[g] == pytest.approx(1.0), g
    # the normaliser comes from the ground truth, never from the prediction
    pred2 = pred.copy()
    pred2[:, 2] += 500.0
    assert lsp_pck(pred2, gt, mask)["PCK"] == pytest.approx(22 / 27)  # only the hips themselves fail


def test_inversion_counts_joints_predicted_at_their_mirror_partners_place():
    """A left ankle found on the right ankle is an inversion; a miss elsewhere, a miss of
    an unpaired joint (neck) or of a joint whose partner is unlabelled is not. PCK,
    inversions and the other misses share one base and add up to 1."""
    gt = np.stack([np.arange(14) * 100.0, np.zeros(14)], axis=1)[None]
    gt[0, 9] = [200.0, 300.0]  # torso 9 -> 2: 300 px, so a joint is found within 60 px
    mask = np.ones((1, 14), dtype=bool)
    mask[0, 1] = False  # right knee unlabelled: its partner, the left knee, cannot be inverted
    pred = gt.copy()
    pred[0, 5] = gt[0, 0] + [5.0, 0.0]  # left ankle on the right ankle: inverted
    pred[0, 4] = gt[0, 1]  # left knee on the unlabelled right knee: a plain miss
    pred[0, 6] = [900.0, 900.0]  # right wrist nowhere near: a plain miss
    pred[0, 12] = gt[0, 13]  # neck on the head top: unpaired, a plain miss
    out = lsp_pck(pred, gt, mask)
    assert out["PCK"] == pytest.approx(9 / 13)
    assert out["Inversion"] == pytest.approx(1 / 13)
    norm = np.array([300.0])
    assert inversion_rate(pred, gt, mask, LSP14.flip_index, 0.2, norm) == pytest.approx(1 / 13)
    assert np.isnan(inversion_rate(pred, gt, np.zeros_like(mask), LSP14.flip_index, 0.2, norm))
    with pytest.raises(ValueError, match="flip_index"):
        inversion_rate(pred, gt, mask, [0, 1], 0.2, norm)


def test_lsp_pck_other_threshold_and_layouts():
    gt = np.zeros((1, 14, 2))
    gt[0, 9] = [0.0, 0.0]
    gt[0, 2] = [0.0, 100.0]
    pred = _offset(gt, [{0: 30.0}])
    mask = np.ones((1, 14), dtype=bool)
    assert lsp_pck(pred, gt, mask, thr=0.5)["PCK"] == 1.0
    assert lsp_pck(pred, gt, mask, thr=0.2)["PCK"] == pytest.approx(13 / 14)
    with pytest.raises(ValueError):
        lsp_pck(np.zeros((1, 17, 2)), np.zeros((1, 17, 2)), np.ones((1, 17), bool), layout=COCO17)
    assert MPII16.torso is None and LSP14.torso == (9, 2)


def test_non_finite_joints_never_count_as_correct():
    """A NaN ground-truth joint is left out like an unlabelled one, a NaN prediction of a
    labelled joint is wrong, a NaN normaliser (torso, head box) leaves its person out."""
    gt = np.tile(np.array([[10.0, 10.0], [40.0, 90.0], [60.0, 20.0]]), (3, 1, 1))
    pred = gt.copy()
    gt[0, 0] = [np.nan, 10.0]
    pred[1, 1] = [np.inf, 90.0]
    mask = np.ones((3, 3), dtype=bool)
    per, mean, counts = keypoint_pck_accuracy(pred, gt, mask, 0.5, np.array([10.0, 10.0, np.nan]))
    np.testing.assert_array_equal(counts, [1, 2, 2])
    np.testing.assert_allclose(per, [1.0, 0.5, 1.0])
    assert mean == pytest.approx(4 / 5)
    layout = LSP14
    a, b = layout.torso
    gt = np.random.default_rng(3).uniform(0, 100, (2, 14, 2))
    gt[1, a] = np.nan  # no torso: person 1 has no normaliser
    result = lsp_pck(gt + 1.0, gt, np.ones((2, 14), dtype=bool), layout)
    assert result["PCK"] == pytest.approx(1.0)  # person 0 alone is scored
    head = mpii_head_sizes(np.array([[[0.0, 0.0], [30.0, 40.0]], [[np.nan, 0.0], [30.0, 40.0]]]))
    gt = np.zeros((2, 16, 2))
    pred = gt.copy()
    pred[1] += 1000.0  # person 1 is all wrong but has no head size: left out
    assert mpii_pckh(pred, gt, np.ones((2, 16), dtype=bool), head)["PCKh"] == pytest.approx(1.0)


def test_layout_pck_falls_back_to_the_box_size():
    from slimpose.keypoints import layout_from_names
    from slimpose.metrics.pck import box_sizes, layout_pck

    layout = layout_from_names("critter", ["a", "b", "c"])
    gt = np.zeros((2, 3, 2))
    boxes = np.array([[5.0, 5.0, 100.0, 50.0], [0.0, 0.0, 20.0, 40.0]])  # longer sides 100 and 40
    np.testing.assert_allclose(box_sizes(boxes), [100.0, 40.0])
    pred = _offset(gt, [{0: 10.0, 1: 25.0, 2: 5.0}, {0: 4.0, 1: 12.0, 2: 1e3}])
    mask = np.ones((2, 3), dtype=bool)
    mask[1, 2] = False
    # person 0: 0.1, 0.25, 0.05; person 1: 0.1, 0.3 (and an unlabelled joint)
    out = layout_pck(pred, gt, mask, layout, boxes_xywh=boxes)
    # no left/right pairs among a, b, c: nothing can be inverted
    assert out == {"PCK": pytest.approx(3 / 5), "PCK@0.1": pytest.approx(1 / 5), "Inversion": 0.0}
    with pytest.raises(ValueError, match="names no torso joints: PCK needs the person boxes"):
        layout_pck(pred, gt, mask, layout)


def test_layout_pck_uses_the_torso_the_layout_names():
    from slimpose.keypoints import layout_from_names
    from slimpose.metrics.pck import layout_pck

    layout = layout_from_names("critter", ["a", "b", "c"], torso=["a", "b"])
    gt = np.zeros((2, 3, 2))
    gt[:, 1, 1] = [50.0, 20.0]  # torsos 50 and 20 long
    pred = _offset(gt, [{2: 9.0}, {2: 5.0}])  # c: 0.18 and 0.25
    out = layout_pck(pred, gt, np.ones((2, 3), bool), layout, boxes_xywh=np.full((2, 4), 1e3))
    assert out["PCK"] == pytest.approx(5 / 6) and out["PCK@0.1"] == pytest.approx(4 / 6)


def test_pck_figures_print_as_percentages_and_coco_ap_as_fractions_in_one_table():
    """A layout from the data is scored with OKS AP and PCK at once: each keeps its form."""
    from slimpose.metrics import format_metric, is_pck_metrics

    metrics = {"AP": 0.1602, "AR50": 0.431, "PCK": 0.372, "PCK@0.1": 0.151, "Head": 0.9, "eval_seconds": 8.68}
    percent = is_pck_metrics(metrics)
    shown = {k: format_metric(k, v, percent) for k, v in metrics.items()}
    assert shown == {"AP": "0.1602", "AR50": "0.4310", "PCK": "37.2%", "PCK@0.1": "15.1%", "Head": "90.0%",
                     "eval_seconds": "8.68"}
    assert format_metric("val/AP", 0.25, True) == "0.2500"
