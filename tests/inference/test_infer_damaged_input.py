"""Damaged input is reported, never passed off as a whole run: a model whose metadata
names its joints with something other than text. Through the command line in a subprocess."""

from __future__ import annotations

import json

import pytest

from infer_testdata import infer_cli, write_images


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
