"""Damaged input is reported, never passed off as a whole run: a video that cannot be
decoded up to the frame count its file declares, and a model whose metadata names its
joints with something other than text. Through the command line in a subprocess."""

from __future__ import annotations

import json

import cv2
import pytest

from infer_testdata import infer_cli, textured_image, write_images

FRAMES = 60


def video_with_a_damaged_middle(path):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for f in range(FRAMES):
        writer.write(textured_image(f, 48, 64))
    writer.release()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + len(data) // 4] = bytes(len(data) // 4)
    path.write_bytes(bytes(data))
    return path


def test_a_video_that_cannot_be_decoded_to_its_declared_end_is_reported(tiny_onnx, tmp_path):
    video = video_with_a_damaged_middle(tmp_path / "clip.avi")
    out = tmp_path / "out"
    proc = infer_cli(tiny_onnx, video, "--out", out, "--no-draw")
    assert proc.returncode == 1, proc.stderr
    frames = json.loads((out / "results.json").read_text())["frames"]
    assert 0 < len(frames) < FRAMES  # the frames read are kept
    assert proc.stderr.strip().splitlines()[-1] == (
        f"slimpose infer: {video}: SOURCE: only {len(frames)} of the {FRAMES} frames the file declares could be "
        f"decoded (a damaged or cut-short video); {out / 'results.json'} holds those {len(frames)}, numbered in the "
        f"order read")


def test_a_model_with_joint_names_that_are_not_text_is_one_line_error(tiny_onnx, tmp_path):
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(tiny_onnx))
    prop = next(p for p in model.metadata_props if p.key == "layout")
    layout = json.loads(prop.value)
    layout["names"] = list(range(len(layout["names"])))
    prop.value = json.dumps(layout)
    hostile = tmp_path / "hostile.onnx"
    onnx.save(model, str(hostile))
    image = write_images(tmp_path / "in", ["a.png"]) / "a.png"
    proc = infer_cli(hostile, image, "--out", tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"{hostile}: metadata field 'layout'" in err and "joint names must be strings, got 0 at index 0" in err
