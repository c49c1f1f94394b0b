"""`slimpose export` and `slimpose quantize` never write their ONNX output over a file a
user needs: their own input (also through a link or another spelling of its path), an
existing file that is not an ONNX model, or a directory (issue 29). Each refusal is one
line on stderr, exit code 2, and the file keeps its bytes.

Through the CLI in a subprocess, so the tests hold whatever the commands call inside; and
through the Python API (export_onnx, quantize_int8), which refuses the same paths with an
OutputError.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from slimpose.deploy.export import export_onnx
from slimpose.deploy.quantize import quantize_int8
from slimpose.engine.checkpoint import save_checkpoint
from slimpose.errors import OutputError
from slimpose.keypoints import COCO17
from slimpose.models.registry import build_model

SIZE = (64, 48)
TINY = {"width": 8, "deconv_channels": 16}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _slimpose(*args, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "slimpose", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def _assert_refused(result: subprocess.CompletedProcess, *words: str) -> None:
    err = result.stderr.strip()
    assert result.returncode == 2, (result.returncode, result.stdout, err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert all(word in err for word in words), err


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "mine.pth"
    model = build_model("tinypose", input_size=SIZE, **TINY)
    save_checkpoint({"model": model.state_dict(), "meta": {"model_name": "tinypose", "input_size": list(SIZE),
                                                           "model_kwargs": TINY}}, path)
    return path


@pytest.fixture
def float_onnx(tmp_path):
    path = tmp_path / "float.onnx"
    export_onnx(build_model("tinypose", input_size=SIZE, **TINY), path, SIZE, COCO17, check=False,
                model_kwargs=TINY)
    return path


@pytest.fixture
def calib_images(tmp_path):
    folder = tmp_path / "calib"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 255, (40, 30, 3), dtype=np.uint8))
    return folder


def test_export_over_its_own_checkpoint_is_refused(tmp_path, checkpoint):
    before = checkpoint.read_bytes()
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.onnx").symlink_to(checkpoint)
    for out in ("mine.pth", "./sub/../mine.pth", tmp_path / "link.onnx"):
        result = _slimpose("export", "tinypose", "--checkpoint", checkpoint, "--out", out, "--no-check", cwd=tmp_path)
        _assert_refused(result, "--out", "mine.pth")
        assert checkpoint.read_bytes() == before


def test_export_over_a_file_that_is_not_onnx_is_refused(tmp_path, checkpoint):
    other = tmp_path / "other_run.pth"
    other.write_bytes(checkpoint.read_bytes())
    notes = tmp_path / "notes.onnx"
    notes.write_text("my notes\n")
    for target in (other, notes):
        before = target.read_bytes()
        result = _slimpose("export", "tinypose", "--checkpoint", checkpoint, "--out", target, "--no-check")
        _assert_refused(result, str(target), "not an ONNX file")
        assert target.read_bytes() == before


def test_export_replaces_an_existing_onnx_file(tmp_path, checkpoint, float_onnx):
    before = float_onnx.read_bytes()
    result = _slimpose("export", "tinypose", "--checkpoint", checkpoint, "--out", float_onnx, "--decode", "dark")
    assert result.returncode == 0, result.stderr
    assert float_onnx.read_bytes() != before


def test_export_to_a_directory_is_refused(tmp_path, checkpoint):
    folder = tmp_path / "exports"
    folder.mkdir()
    result = _slimpose("export", "tinypose", "--checkpoint", checkpoint, "--out", folder, "--no-check")
    _assert_refused(result, str(folder), "is a folder")
    assert list(folder.iterdir()) == []


def test_export_into_a_folder_that_is_a_file_is_refused(tmp_path, checkpoint):
    result = _slimpose("export", "tinypose", "--checkpoint", checkpoint, "--out", "mine.pth/exports/tiny.onnx",
                       "--no-check", cwd=tmp_path)
    _assert_refused(result, "mine.pth is a file, not a folder")


def test_quantize_over_its_own_input_is_refused(tmp_path, float_onnx, calib_images):
    before = float_onnx.read_bytes()
    (tmp_path / "link.onnx").symlink_to(float_onnx)
    for out in ("float.onnx", "./calib/../float.onnx", tmp_path / "link.onnx"):
        result = _slimpose("quantize", float_onnx, "--out", out, "--calib-images", calib_images,
                           "--num-calib", 1, "--num-eval", 0, cwd=tmp_path)
        _assert_refused(result, "--out", "float.onnx")
        assert float_onnx.read_bytes() == before


def test_quantize_over_a_file_that_is_not_onnx_is_refused(tmp_path, float_onnx, calib_images):
    config = tmp_path / "experiment.yaml"
    config.write_text("model:\n  name: tinypose\n")
    result = _slimpose("quantize", float_onnx, "--out", config, "--calib-images", calib_images, "--num-calib", 1)
    _assert_refused(result, str(config), "not an ONNX file")
    assert config.read_text() == "model:\n  name: tinypose\n"


def test_quantize_to_a_directory_is_refused(float_onnx, calib_images):
    result = _slimpose("quantize", float_onnx, "--out", calib_images, "--calib-images", calib_images,
                       "--num-calib", 1)
    _assert_refused(result, str(calib_images), "is a folder")
    assert sorted(p.name for p in calib_images.iterdir()) == ["0.png", "1.png"]


# --------------------------------------------------------------------------- the Python API


def _tiny_model():
    return build_model("tinypose", input_size=SIZE, **TINY)


def test_export_onnx_refuses_its_own_checkpoint_in_any_spelling(tmp_path, checkpoint, monkeypatch):
    before = checkpoint.read_bytes()
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.onnx").symlink_to(checkpoint)
    monkeypatch.chdir(tmp_path)
    for out in ("mine.pth", "./sub/../mine.pth", tmp_path / "link.onnx"):
        with pytest.raises(OutputError, match=f"^{re.escape(str(Path(out)))}: is the input {re.escape(str(checkpoint))}; writing it would"):
            export_onnx(_tiny_model(), out, SIZE, COCO17, check=False, inputs=[checkpoint])
        assert checkpoint.read_bytes() == before
    # named as an input or not, a checkpoint is not an ONNX file: never replaced
    with pytest.raises(OutputError, match="mine.pth: exists and is not an ONNX file"):
        export_onnx(_tiny_model(), "mine.pth", SIZE, COCO17, check=False)
    assert checkpoint.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "link.onnx", "mine.pth", "sub"]


def test_export_onnx_refuses_a_directory_and_replaces_an_onnx_file(tmp_path, float_onnx):
    with pytest.raises(OutputError, match="is a folder"):
        export_onnx(_tiny_model(), tmp_path, SIZE, COCO17, check=False)
    before = float_onnx.read_bytes()
    export_onnx(_tiny_model(), float_onnx, SIZE, COCO17, check=False, decode="dark", model_kwargs=TINY)
    assert float_onnx.read_bytes() != before


def test_quantize_int8_refuses_its_own_input_in_any_spelling(tmp_path, float_onnx, monkeypatch):
    before = float_onnx.read_bytes()
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.onnx").symlink_to(float_onnx)
    monkeypatch.chdir(tmp_path)
    crops = np.zeros((1, 3, *SIZE), np.float32)
    for out in ("float.onnx", "./sub/../float.onnx", tmp_path / "link.onnx"):
        with pytest.raises(OutputError, match=f"^{re.escape(str(Path(out)))}: is the input {re.escape(str(float_onnx))}; writing it would"):
            quantize_int8(float_onnx, out, crops)
        assert float_onnx.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["float.onnx", "link.onnx", "sub"]
    config = tmp_path / "experiment.yaml"
    config.write_text("model:\n  name: tinypose\n")
    with pytest.raises(OutputError, match="experiment.yaml: exists and is not an ONNX file"):
        quantize_int8(float_onnx, config, crops)
    assert config.read_text() == "model:\n  name: tinypose\n"
