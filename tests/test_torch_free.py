"""The torch-free commands run where torch cannot be imported at all, and the commands
that need torch say so in one line there.

Each command runs as ``python -m slimpose`` in a subprocess whose PYTHONPATH starts with
a folder holding a ``torch`` package that raises ImportError when imported: whatever
path leads to torch (config validation, a command module importing another, a lazily
imported helper) fails the command instead of passing silently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from slimpose.weights import get_weight, list_weights

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
LSPET = SHARED / "data" / "lspet"
COCO_VAL = SHARED / "data" / "coco-mini" / "val2017"
COCO_VAL_ANN = SHARED / "data" / "coco-mini" / "annotations" / "person_keypoints_val2017.json"
WEIGHT = get_weight("lpn_50_lsp_128x96_int8")  # an LSP-14 model, as the data below
BLOCKED = "torch is blocked in this test"

needs_lspet = pytest.mark.skipif(not (LSPET / "joints.mat").is_file(), reason="needs ../shared/data/lspet")
needs_coco = pytest.mark.skipif(not COCO_VAL_ANN.is_file(), reason="needs ../shared/data/coco-mini")


def blocking_env(blocker: Path, packages: tuple[str, ...], named: tuple[str, ...] = ()) -> dict:
    """The environment of a process in which importing each of ``packages`` raises ImportError:
    one that names no module (as a broken installation's does), or for those in ``named``
    a ModuleNotFoundError naming the package (as a missing one's does)."""
    for package in packages:
        (blocker / package).mkdir()
        error = (f"ModuleNotFoundError({BLOCKED!r}, name={package!r})" if package in named
                 else f"ImportError({BLOCKED!r})")
        (blocker / package / "__init__.py").write_text(f"raise {error}\n")
    path = os.pathsep.join(p for p in (str(blocker), str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    for package in packages:
        proc = subprocess.run([sys.executable, "-c", f"import {package}"], capture_output=True, text=True, env=env)
        assert proc.returncode != 0 and BLOCKED in proc.stderr, f"the {package} blocker does not take effect"
    return env


@pytest.fixture(scope="module")
def no_torch_env(tmp_path_factory) -> dict:
    """The environment of a process in which ``import torch`` raises ImportError."""
    return blocking_env(tmp_path_factory.mktemp("no_torch"), ("torch", "torchvision"))


@pytest.fixture(scope="module")
def base_install_env(tmp_path_factory) -> dict:
    """As ``pip install slimpose`` leaves it: neither torch nor onnx (the [train] and
    [quantize] extras) can be imported."""
    return blocking_env(tmp_path_factory.mktemp("base_install"), ("torch", "torchvision", "onnx"), named=("onnx",))


def slimpose(env: dict, *args, cwd: Path = REPO) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "slimpose", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_the_runtime_and_every_command_module_import_without_torch(no_torch_env):
    from slimpose.cli import COMMANDS

    modules = sorted({module for module, _ in COMMANDS.values()} | {
        "slimpose.cli", "slimpose.cli_support", "slimpose.config", "slimpose.weights", "slimpose.deploy.runtime",
        "slimpose.deploy.evaluate", "slimpose.deploy.quantize", "slimpose.inference.pipeline",
        "slimpose.inference.detectors", "slimpose.inference.tracking", "slimpose.engine.rundir"})
    code = f"import importlib\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=no_torch_env,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_weights_lists_without_torch(no_torch_env, tmp_path):
    out = tmp_path / "weights.json"
    proc = slimpose(no_torch_env, "weights", "--json", out)
    assert proc.returncode == 0, proc.stderr
    for w in list_weights():
        assert w.name in proc.stdout and "val PCK@0.2" in proc.stdout
    assert {row["name"] for row in json.loads(out.read_text())} == {w.name for w in list_weights()}


@needs_lspet
@pytest.mark.realdata
@pytest.mark.parametrize("with_config", [False, True], ids=["shipped-name", "file-and-config"])
def test_eval_onnx_scores_without_torch(no_torch_env, tmp_path, with_config):
    """A shipped weight by name (its manifest's config) and an ONNX file with a CONFIG whose
    model section names another model: neither is checked against the model registry."""
    out = tmp_path / "metrics.json"
    model = [WEIGHT.path, REPO / "configs" / "lpn_50_lspet_128x96.yaml"] if with_config else [WEIGHT.name]
    proc = slimpose(no_torch_env, "eval", "--onnx", *model, "--set", "data.val.last=8004", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "PCK" in proc.stdout and f"wrote {out}" in proc.stdout
    metrics = json.loads(out.read_text())
    assert 0.0 <= metrics["PCK"] <= 1.0 and "Head" in metrics


@needs_lspet
@pytest.mark.realdata
def test_audit_runs_a_shipped_weight_on_its_own_data_without_torch(no_torch_env, tmp_path):
    out = tmp_path / "audit.json"
    proc = slimpose(no_torch_env, "audit", "--model", WEIGHT.name, "--split", "val", "--set", "data.val.last=8010",
                    "--out", out)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["people"] == 10 and set(report["mirrored"]) == {"hip-knee-ankle", "shoulder-elbow-wrist"}


def test_infer_runs_a_shipped_weight_without_torch(no_torch_env, tmp_path):
    image = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(image), cv2.GaussianBlur(rng.integers(0, 255, (160, 120, 3), dtype=np.uint8), (5, 5), 2))
    out = tmp_path / "out"
    proc = slimpose(no_torch_env, "infer", WEIGHT.name, image, "--out", out, "--threads", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "photo.png: 1 person," in proc.stdout and f"wrote {out / 'results.json'}" in proc.stdout
    (result,) = json.loads((out / "results.json").read_text())
    assert result["image_id"] == "photo.png" and len(result["keypoints"]) == 14 * 3
    assert (out / "photo.png_pose.jpg").is_file()


@needs_coco
@pytest.mark.realdata
def test_infer_with_ground_truth_boxes_without_torch(no_torch_env, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    name = "000000343803.jpg"
    (photos / name).write_bytes((COCO_VAL / name).read_bytes())
    out = tmp_path / "out"
    proc = slimpose(no_torch_env, "infer", WEIGHT.name, photos, "--detector", f"boxes:{COCO_VAL_ANN}",
                    "--out", out, "--threads", "1", "--flip", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results and {r["image_id"] for r in results} == {343803}
    assert all(len(r["keypoints"]) == 14 * 3 for r in results)


@pytest.mark.parametrize("argv", [
    ["train", REPO / "configs" / "tinypose_synthetic_128x96.yaml"],
    ["eval", "--checkpoint", WEIGHT.name],
    ["export", "tinypose", "--out", "model.onnx"],
], ids=["train", "eval-checkpoint", "export"])
def test_commands_that_need_torch_say_so_in_one_line(no_torch_env, tmp_path, argv):
    command = argv[0]
    if command == "train":
        argv = [*argv, "--work-dir", tmp_path / "run"]
    proc = slimpose(no_torch_env, *argv, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f'slimpose {command} needs PyTorch: pip install "slimpose[train]" ({BLOCKED})']
    assert list(tmp_path.iterdir()) == []  # nothing written: no run folder, no model file


def test_quantize_without_onnx_names_its_extra(base_install_env, tmp_path):
    """quantize is torch-free but ONNX Runtime's quantiser imports the onnx package: without
    it the command names the [quantize] extra (not [train], which would pull torch)."""
    images = tmp_path / "calib"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.full((64, 48, 3), 128, np.uint8))
    proc = slimpose(base_install_env, "quantize", WEIGHT.path, "--out", tmp_path / "int8.onnx",
                    "--calib-images", images, "--num-calib", "1", "--num-eval", "0", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f'slimpose quantize needs onnx: pip install "slimpose[quantize]" ({BLOCKED})']
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib"]


def test_missing_extra_names_the_extra_that_installs_it():
    from slimpose.cli import missing_extra

    assert missing_extra("train", ModuleNotFoundError("x", name="torch")) == ("PyTorch", "train")
    assert missing_extra("export", ModuleNotFoundError("x", name="torch.onnx")) == ("PyTorch", "train")
    assert missing_extra("export", ModuleNotFoundError("x", name="onnx")) == ("onnx", "train")
    assert missing_extra("quantize", ModuleNotFoundError("x", name="onnx.helper")) == ("onnx", "quantize")
    assert missing_extra("infer", ModuleNotFoundError("x", name="onnxruntime")) is None
    assert missing_extra("infer", ModuleNotFoundError("x", name="cv2")) is None
