"""``slimpose infer``: photos → COCO results that ``slimpose eval`` scores, videos → one
record per frame, one-line errors for bad input, a folder's unreadable images skipped
and named, and no torch anywhere on the path."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from infer_testdata import COCO_VAL, COCO_VAL_ANN, ENV, YOLOX, infer_cli, need, textured_image, write_images
from slimpose.cli import main

COCO_IMAGES = ("000000343803.jpg", "000000350679.jpg")


@pytest.fixture(scope="module")
def coco_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for name in COCO_IMAGES:
        shutil.copy(need(COCO_VAL / name), folder / name)
    return folder


def gt_boxes_file(path, image_names) -> None:
    ann = json.loads(need(COCO_VAL_ANN).read_text())
    ids = {im["id"] for im in ann["images"] if im["file_name"] in image_names}
    path.write_text(json.dumps([{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 1.0}
                                for a in ann["annotations"] if a["image_id"] in ids and not a["iscrowd"]]))


def test_photos_give_coco_results_that_eval_scores(tiny_onnx, coco_folder, tmp_path, capsys):
    boxes = tmp_path / "gt_boxes.json"
    gt_boxes_file(boxes, COCO_IMAGES)
    out = tmp_path / "out"
    assert main(["infer", str(tiny_onnx), str(coco_folder), "--detector", f"boxes:{boxes}", "--out", str(out),
                 "--threads", "1", "--flip"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"000000343803\.jpg: \d+ (person|people)\b", printed)  # per-image summary
    assert "2 frames" in printed and "FPS" in printed and "detector" in printed and "drawing" in printed
    results = json.loads((out / "results.json").read_text())
    assert {r["image_id"] for r in results} == {343803, 350679}
    r = results[0]
    assert r["category_id"] == 1 and len(r["bbox"]) == 4 and len(r["keypoints"]) == 17 * 3
    assert sorted(p.name for p in out.glob("*_pose.jpg")) == ["000000343803.jpg_pose.jpg", "000000350679.jpg_pose.jpg"]
    metrics_path = tmp_path / "metrics.json"
    assert main(["eval", "--ann", str(COCO_VAL_ANN), "--results", str(out / "results.json"),
                 "--out", str(metrics_path)]) == 0
    assert "AP" in json.loads(metrics_path.read_text())


def test_video_gives_one_record_per_frame_and_a_drawn_video(tiny_onnx, tmp_path, capsys):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 80))
    for f in range(6):
        writer.write(np.roll(textured_image(5, 80, 96), 3 * f, axis=1))
    writer.release()
    out = tmp_path / "out"
    assert main(["infer", str(tiny_onnx), str(path), "--out", str(out), "--det-every", "3", "--smooth",
                 "--threads", "1"]) == 0
    assert "6 frames" in capsys.readouterr().out
    record = json.loads((out / "results.json").read_text())
    assert record["fps"] == pytest.approx(10.0) and record["layout"] == "coco" and len(record["keypoint_names"]) == 17
    assert [f["frame"] for f in record["frames"]] == list(range(6))
    for frame in record["frames"]:
        n = len(frame["track_ids"])
        assert len(frame["boxes"]) == len(frame["scores"]) == len(frame["keypoints"]) == n
        assert all(len(k) == 17 and len(s) == 17 for k, s in zip(frame["keypoints"], frame["keypoint_scores"]))
    cap = cv2.VideoCapture(str(out / "clip_pose.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    cap.release()


def _error_of(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_bad_input_is_one_line_error(tiny_onnx, tmp_path, capsys):
    model = str(tiny_onnx)
    bad_image = tmp_path / "broken.jpg"
    bad_image.write_text("not a picture")
    bad_video = tmp_path / "broken.mp4"
    bad_video.write_bytes(bytes(range(256)) * 8)
    empty = tmp_path / "empty"
    empty.mkdir()
    out = ["--out", str(tmp_path / "o")]
    assert "cannot be decoded as an image" in _error_of(capsys, ["infer", model, str(bad_image), *out])
    assert "cannot be opened as a video" in _error_of(capsys, ["infer", model, str(bad_video), *out])
    assert "camera 97 cannot be opened" in _error_of(capsys, ["infer", model, "97", *out])
    assert "no images" in _error_of(capsys, ["infer", model, str(empty), *out])
    assert "no such file or folder" in _error_of(capsys, ["infer", model, str(tmp_path / "nope.jpg"), *out])
    image = tmp_path / "ok.png"
    cv2.imwrite(str(image), textured_image(0, 60, 40))
    err = _error_of(capsys, ["infer", model, str(image), "--detector", model, *out])
    assert "not a person detector format" in err and "outputs: output [1, 17, 16, 12]" in err
    err = _error_of(capsys, ["infer", model, str(image), "--layout", "lsp", *out])
    assert "predicts the 'coco' layout (17 keypoints), not 'lsp' (14)" in err
    err = _error_of(capsys, ["infer", str(tmp_path / "run" / "best.pth"), str(image), *out])
    assert "Export it first: slimpose export MODEL_NAME --checkpoint" in err
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("model: {name: lpn_50}\n")
    err = _error_of(capsys, ["infer", str(run_dir / "best.pth"), str(image), *out])
    assert f"slimpose export lpn_50 --checkpoint {run_dir / 'best.pth'} --out {run_dir / 'best.onnx'}" in err
    assert "no shipped weight named 'no_such_weight'" in _error_of(capsys, ["infer", "no_such_weight", str(image), *out])
    assert "model file not found" in _error_of(capsys, ["infer", str(tmp_path / "gone.onnx"), str(image), *out])
    far = tmp_path / "far.json"
    far.write_text(json.dumps([{"image_id": "ok.png", "category_id": 1, "bbox": [500, 500, 20, 20], "score": 1}]))
    assert "lies outside image" in _error_of(capsys, ["infer", model, str(image), "--detector", f"boxes:{far}", *out])


def test_unreadable_images_in_a_folder_are_skipped_named_and_fail_the_run(tiny_onnx, tmp_path):
    folder = write_images(tmp_path / "photos", ["a.png", "z.png"])
    (folder / "b_broken.png").write_text("truncated")
    (folder / "c_empty.jpg").write_bytes(b"")
    out = tmp_path / "out"
    proc = infer_cli(tiny_onnx, folder, "--out", out)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "slimpose infer: 2 of 4 images could not be read and were skipped: b_broken.png (cannot be decoded as an "
        "image), c_empty.jpg (empty file)")
    # the images before and after the bad ones are done
    assert {r["image_id"] for r in json.loads((out / "results.json").read_text())} == {"a.png", "z.png"}
    assert sorted(p.name for p in out.glob("*_pose.jpg")) == ["a.png_pose.jpg", "z.png_pose.jpg"]
    assert "2 of 4 images could not be read" in json.loads((out / "infer_run.json").read_text())["status"]


def test_the_whole_infer_path_never_imports_torch(tiny_onnx, tmp_path):
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), textured_image(3, 120, 90))
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (90, 120))
    for _ in range(3):
        writer.write(textured_image(4, 120, 90))
    writer.release()
    detector = str(YOLOX) if YOLOX.exists() else "whole"
    code = textwrap.dedent(f"""
        import sys
        from slimpose.cli import main
        for source, out in (({str(image)!r}, {str(tmp_path / 'o1')!r}), ({str(video)!r}, {str(tmp_path / 'o2')!r})):
            rc = main(['infer', {str(tiny_onnx)!r}, source, '--detector', {detector!r}, '--out', out,
                       '--threads', '1', '--det-every', '2', '--smooth'])
            assert rc == 0, rc
        from slimpose.inference import pipeline, tracking, detectors  # the Python API too
        assert 'torch' not in sys.modules, 'infer imported torch'
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_show_without_a_display_says_so_and_still_writes_results(tiny_onnx, coco_folder, tmp_path, capsys,
                                                                monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    out = tmp_path / "out"
    assert main(["infer", str(tiny_onnx), str(coco_folder / COCO_IMAGES[0]), "--show", "--out", str(out),
                 "--threads", "1"]) == 0
    assert "no display here; --show ignored" in capsys.readouterr().err
    assert len(json.loads((out / "results.json").read_text())) == 1
    assert (out / "000000343803.jpg_pose.jpg").is_file()  # --show implies drawing, kept on disk


def test_one_photo_one_person_is_counted_in_the_singular(tiny_onnx, coco_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["infer", str(tiny_onnx), str(coco_folder / COCO_IMAGES[0]), "--out", str(out), "--threads", "1",
                 "--no-draw"]) == 0
    printed = capsys.readouterr().out
    assert f"{COCO_IMAGES[0]}: 1 person" in printed  # the whole image is the one box
    assert "1 frame, 1 person, " in printed
    assert "1 people" not in printed and "1 frames" not in printed


def test_drawn_scores_are_named_and_only_with_draw_scores(tiny_onnx, coco_folder, tmp_path):
    from types import SimpleNamespace

    from slimpose.inference.commands import box_label

    person = SimpleNamespace(track_id=3, score=0.8712)
    assert box_label(person, with_id=False, with_score=False) is None
    assert box_label(person, with_id=False, with_score=True) == "score 0.87"
    assert box_label(person, with_id=True, with_score=False) == "#3"
    assert box_label(person, with_id=True, with_score=True) == "#3 score 0.87"
    drawings = {}
    for flag in ([], ["--draw-scores"]):
        out = tmp_path / f"out{len(flag)}"
        assert main(["infer", str(tiny_onnx), str(coco_folder / COCO_IMAGES[0]), "--out", str(out), "--threads", "1",
                     *flag]) == 0
        drawings[bool(flag)] = cv2.imread(str(out / f"{COCO_IMAGES[0]}_pose.jpg")).astype(int)
    assert np.abs(drawings[True] - drawings[False]).max() > 50  # the label's text is drawn only with the flag
