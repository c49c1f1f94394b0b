"""A shipped weight resolved by name is checked against its manifest's sha256 (the ONNX
file) or checkpoint_sha256 (the torch checkpoint) by every command that takes a name,
not only by ``OnnxPoseEstimator.from_pretrained``; a damaged file is one line, exit 2
(issue 29). A file that matched is not hashed again in the same process.

The package's smallest weight is copied into a folder that stands in for the package's
own (``slimpose.weights.WEIGHTS_DIR``), one byte of a file flipped.
"""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

import slimpose.weights
from slimpose.cli import main
from slimpose.deploy.runtime import OnnxPoseEstimator
from slimpose.weights import WeightsError, resolve_checkpoint, resolve_model_file

NAME = "lpn_50_lsp_128x96_int8"
DAMAGED = "sha256 differs from its manifest"


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """The weight's manifest, ONNX file and checkpoint in a folder the resolver uses."""
    folder = tmp_path / "weights"
    folder.mkdir()
    for ext in (".json", ".onnx", ".pth"):
        shutil.copy(slimpose.weights.WEIGHTS_DIR / f"{NAME}{ext}", folder)
    monkeypatch.setattr(slimpose.weights, "WEIGHTS_DIR", folder)
    monkeypatch.chdir(tmp_path)  # the manifest's data paths lead nowhere from here
    return folder


def _flip_one_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _run(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err.strip()


def _assert_damage_reported(code: int, err: str, path) -> None:
    assert code == 2, (code, err)
    assert len(err.splitlines()) == 1 and str(path) in err and DAMAGED in err and "reinstall" in err, err


ONNX_COMMANDS = {
    "infer": ["infer", NAME, "person.png", "--out", "poses", "--no-draw"],
    "eval --onnx": ["eval", "--onnx", NAME, "--out", "eval/metrics.json"],
    "bench": ["bench", NAME, "--backend", "onnxruntime", "--warmup", "0", "--iters", "1", "--threads", "1"],
}
CHECKPOINT_COMMANDS = {
    "export": ["export", "lpn_50", "--checkpoint", NAME, "--out", "re.onnx", "--no-check"],
    "eval --checkpoint": ["eval", "--checkpoint", NAME, "--out", "eval/metrics.json"],
}


@pytest.mark.parametrize("command", sorted(ONNX_COMMANDS))
def test_commands_refuse_a_damaged_onnx_file_by_name(tmp_path, shipped, capsys, command):
    onnx_path = shipped / f"{NAME}.onnx"
    _flip_one_byte(onnx_path)
    cv2.imwrite(str(tmp_path / "person.png"), np.zeros((40, 30, 3), np.uint8))
    _assert_damage_reported(*_run(capsys, *ONNX_COMMANDS[command]), onnx_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["person.png", "weights"]  # nothing written


@pytest.mark.parametrize("command", sorted(CHECKPOINT_COMMANDS))
def test_commands_refuse_a_damaged_checkpoint_by_name(tmp_path, shipped, capsys, command):
    checkpoint = shipped / f"{NAME}.pth"
    _flip_one_byte(checkpoint)
    _assert_damage_reported(*_run(capsys, *CHECKPOINT_COMMANDS[command]), checkpoint)
    assert [p.name for p in tmp_path.iterdir()] == ["weights"]  # nothing written


def test_the_api_refuses_a_damaged_file_by_name(shipped):
    _flip_one_byte(shipped / f"{NAME}.onnx")
    for resolve in (resolve_model_file, OnnxPoseEstimator.from_pretrained):
        with pytest.raises(WeightsError, match=DAMAGED):
            resolve(NAME)


def test_a_file_that_matched_is_hashed_once_per_process_until_it_changes(shipped, monkeypatch):
    hashed = []
    real_sha256 = slimpose.weights.file_sha256

    def counting_sha256(path):
        hashed.append(path.name)
        return real_sha256(path)

    monkeypatch.setattr(slimpose.weights, "file_sha256", counting_sha256)
    for _ in range(3):
        assert resolve_model_file(NAME) == shipped / f"{NAME}.onnx"
        assert resolve_checkpoint(NAME) == shipped / f"{NAME}.pth"
    assert sorted(hashed) == [f"{NAME}.onnx", f"{NAME}.pth"]
    checkpoint = shipped / f"{NAME}.pth"
    checkpoint.write_bytes(checkpoint.read_bytes()[:-1])  # cut short since it matched: checked again
    with pytest.raises(WeightsError, match=DAMAGED):
        resolve_checkpoint(NAME)
