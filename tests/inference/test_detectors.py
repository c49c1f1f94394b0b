"""Person detectors: the two real files (YOLOX-Nano, NanoDet-m), tiny graphs in the YOLOX
end-to-end and YOLOv8 formats, boxes files, and the errors for files of other kinds."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from infer_testdata import COCO_VAL, NANODET, YOLOX, infer_cli, need, textured_image, write_images
from slimpose.errors import SlimposeError
from slimpose.inference.detectors import (
    BoxesFileDetector,
    DetectorError,
    NanoDet,
    OnnxDetector,
    WholeImageDetector,
    YoloV8,
    YoloxEndToEnd,
    YoloxRaw,
    build_detector,
)
from slimpose.inference.tracking import box_iou

# coco-mini val: one large person on a portrait (427x640) image.
PORTRAIT = "000000343803.jpg"
PORTRAIT_PERSON = np.array([19.15, 135.18, 19.15 + 314.89, 135.18 + 474.1])


def constant_graph(path, input_shape, outputs: dict[str, np.ndarray]) -> None:
    """An ONNX file with one image input whose outputs are the given arrays (each plus
    0 x mean(input), so the input is used and the outputs are not folded away)."""
    nodes = [helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
             helper.make_node("Mul", ["mean", "zero"], ["nothing"])]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    outs = []
    for name, value in outputs.items():
        inits.append(numpy_helper.from_array(value.astype(np.float32), f"{name}_value"))
        nodes.append(helper.make_node("Add", [f"{name}_value", "nothing"], [name]))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(nodes, "detector", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                                 list(input_shape))], outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def portrait() -> np.ndarray:
    return cv2.imread(str(need(COCO_VAL / PORTRAIT)))


@pytest.mark.parametrize("path, fmt", [(YOLOX, YoloxRaw), (NANODET, NanoDet)], ids=["yolox", "nanodet"])
def test_real_detector_finds_the_person_on_a_non_square_image(path, fmt):
    det = OnnxDetector(need(path), score_thr=0.3, threads=1)
    assert isinstance(det.format, fmt) and det.input_size == (416, 416)
    image = portrait()
    boxes, scores = det(image)
    assert boxes.dtype == np.float32 and boxes.shape[1] == 4 and len(boxes) == len(scores) >= 1
    assert (np.diff(scores) <= 0).all(), "best first"
    assert box_iou(boxes[:1], PORTRAIT_PERSON[None])[0, 0] > 0.75, (boxes[0], scores[0])

    # The same picture pasted into a wide canvas: letterboxing/resizing changes, and the
    # boxes must still land on the person, shifted by the paste offset.
    dx, dy = 400, 90
    canvas = np.full((image.shape[0] + 2 * dy, image.shape[1] + 2 * dx, 3), 90, np.uint8)
    canvas[dy:dy + image.shape[0], dx:dx + image.shape[1]] = image
    boxes2, _ = det(canvas)
    shifted = PORTRAIT_PERSON + np.array([dx, dy, dx, dy])
    assert box_iou(boxes2, shifted[None]).max() > 0.7, boxes2[:3]
    assert (boxes2[:, [0, 2]] <= canvas.shape[1]).all() and (boxes2[:, [1, 3]] <= canvas.shape[0]).all()


def test_yolox_end_to_end_format(tmp_path):
    # dets in input pixels of a 96x96 letterbox (top-left, ratio 0.32 for a 300x150 image)
    dets = np.array([[[32, 16, 64, 48, 0.9], [0, 0, 30, 30, 0.8], [10, 10, 40, 40, 0.1]]], np.float32)
    labels = np.array([[0, 2, 0]], np.float32)
    path = tmp_path / "e2e.onnx"
    constant_graph(path, (1, 3, 96, 96), {"dets": dets, "labels": labels})
    det = OnnxDetector(path, score_thr=0.3)
    assert isinstance(det.format, YoloxEndToEnd)
    boxes, scores = det(textured_image(0, 150, 300))
    np.testing.assert_allclose(boxes, [[100, 50, 200, 150]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.9], atol=1e-6)
    # another person class index
    boxes, _ = OnnxDetector(path, score_thr=0.3, person_class=2)(textured_image(0, 150, 300))
    np.testing.assert_allclose(boxes, [[0, 0, 93.75, 93.75]], atol=1e-4)


def test_yolov8_format_centred_letterbox_and_nms(tmp_path):
    # (1, 4 + 2 classes, N): cx, cy, w, h in a 96x96 input, centred letterbox: a 300x150
    # image becomes 96x48 with 24 px of padding above, ratio 0.32.
    n = 40
    pred = np.zeros((1, 6, n), np.float32)
    pred[0, :4, 0] = [48, 48, 32, 32]
    pred[0, 4, 0] = 0.9
    pred[0, :4, 1] = [49, 48, 32, 32]  # a duplicate, removed by NMS
    pred[0, 4, 1] = 0.8
    pred[0, :4, 2] = [20, 40, 10, 10]  # another class
    pred[0, 5, 2] = 0.95
    path = tmp_path / "v8.onnx"
    constant_graph(path, (1, 3, 96, 96), {"output0": pred})
    det = OnnxDetector(path, score_thr=0.3, nms_iou=0.5)
    assert isinstance(det.format, YoloV8)
    boxes, scores = det(textured_image(1, 150, 300))
    np.testing.assert_allclose(boxes, [[100, 25, 200, 125]], atol=1e-3)
    np.testing.assert_allclose(scores, [0.9], atol=1e-6)


def test_files_of_other_kinds_are_refused_with_what_was_seen(tmp_path, tiny_onnx):
    wrong = tmp_path / "classifier.onnx"
    constant_graph(wrong, (1, 3, 64, 64), {"logits": np.zeros((1, 10), np.float32)})
    with pytest.raises(DetectorError, match=r"inputs: images \[1, 3, 64, 64\]; outputs: logits \[1, 10\]"):
        OnnxDetector(wrong)
    with pytest.raises(DetectorError, match=r"not a person detector format.*output \[1, 17, 16, 12\]"):
        OnnxDetector(tiny_onnx)
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    with pytest.raises(DetectorError, match="not a loadable ONNX detector"):
        OnnxDetector(text)
    with pytest.raises(DetectorError, match="not found"):
        build_detector(str(tmp_path / "missing.onnx"))


def test_whole_image_and_boxes_file(tmp_path):
    image = textured_image(2, 100, 200)
    boxes, scores = WholeImageDetector()(image)
    np.testing.assert_array_equal(boxes, [[0, 0, 200, 100]])
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([
        {"image_id": 139, "category_id": 1, "bbox": [10, 20, 30, 40], "score": 0.9},
        {"image_id": 139, "category_id": 3, "bbox": [0, 0, 5, 5], "score": 0.9},  # not a person
        {"image_id": 139, "category_id": 1, "bbox": [150, 50, 100, 100], "score": 0.5},  # partly outside
        {"image_id": "frame.png", "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.7},
    ]))
    det = build_detector(f"boxes:{path}")
    assert isinstance(det, BoxesFileDetector)
    boxes, scores = det(image, "some/dir/000000000139.jpg")  # COCO file name → id 139
    np.testing.assert_allclose(boxes, [[10, 20, 40, 60], [150, 50, 200, 100]])
    np.testing.assert_allclose(scores, [0.9, 0.5])
    boxes, _ = det(image, "x/frame.png")
    np.testing.assert_allclose(boxes, [[1, 2, 4, 6]])
    assert len(det(image, "unlisted.jpg")[0]) == 0
    with pytest.raises(SlimposeError, match="per image"):
        det(image)


def test_boxes_from_a_coco_annotation_file_are_its_ground_truth_boxes(tmp_path):
    path = tmp_path / "person_keypoints.json"
    path.write_text(json.dumps({"images": [{"id": 139, "file_name": "000000000139.jpg"}], "annotations": [
        {"id": 1, "image_id": 139, "category_id": 1, "bbox": [10, 20, 30, 40], "iscrowd": 0},
        {"id": 2, "image_id": 139, "category_id": 1, "bbox": [0, 0, 90, 90], "iscrowd": 1},  # crowd region
    ], "categories": [{"id": 1, "name": "person"}]}))
    boxes, scores = build_detector(f"boxes:{path}")(textured_image(3, 100, 200), "000000000139.jpg")
    np.testing.assert_allclose(boxes, [[10, 20, 40, 60]])
    np.testing.assert_allclose(scores, [1.0])


@pytest.mark.parametrize("content, field", [
    ([{"image_id": 1, "bbox": [900, 900, 10, 10], "score": 1.0}], r"\[0\]\.bbox: box .* lies outside image 1"),
    ([{"image_id": 1, "bbox": [0, 0, -1, 10]}], r"\[0\]\.bbox: width and height"),
    ([{"bbox": [0, 0, 1, 1]}], r"\[0\]: expected an object with image_id"),
    ({"image_id": 1}, "expected a COCO detection results list or a COCO annotation file"),
])
def test_bad_boxes_files_name_the_field(tmp_path, content, field):
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(content))
    with pytest.raises(SlimposeError, match=field):
        BoxesFileDetector(path)(textured_image(3, 100, 200), 1)


@pytest.mark.parametrize("record, field", [
    ({"image_id": [1], "bbox": [0, 0, 10, 10], "score": 0.9}, r"\[0\]\.image_id: expected an id or a file name"),
    ({"image_id": "p.png", "bbox": [0, 0, 10, 10], "score": float("nan")}, r"\[0\]\.score: expected a finite number"),
    ({"image_id": "p.png", "bbox": [0, float("nan"), 10, 10]}, r"\[0\]\.bbox: expected \[x, y, w, h\] finite"),
])
def test_infer_refuses_a_boxes_file_with_a_bad_entry_in_one_line(tiny_onnx, tmp_path, record, field):
    photos = write_images(tmp_path / "photos", ["p.png"])
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([record]))  # json writes NaN, as numpy-based tools do
    done = infer_cli(tiny_onnx, photos / "p.png", "--detector", f"boxes:{boxes}", "--out", tmp_path / "out")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert re.search(field, done.stderr) and len(done.stderr.strip().splitlines()) == 1, done.stderr
