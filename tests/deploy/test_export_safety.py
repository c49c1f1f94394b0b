"""Export writes all or nothing, fails when ONNX Runtime disagrees with PyTorch, and keeps
local paths out of the file (issue 9 defects)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn

from slimpose.cli import main
from slimpose.deploy.export import DEFAULT_TOLERANCE, ExportError, export_onnx
from slimpose.deploy.runtime import read_onnx_metadata
from slimpose.engine.checkpoint import save_checkpoint
from slimpose.keypoints import COCO17
from slimpose.models.registry import build_model

SIZE = (64, 48)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class ExportsDifferently(nn.Module):
    """A heatmap model whose exported graph adds ``offset``: what a broken export looks like."""

    output_kind = "heatmap"

    def __init__(self, offset: float):
        super().__init__()
        self.offset = offset
        self.conv = nn.Conv2d(3, COCO17.num_keypoints, 4, stride=4)

    def forward(self, x):
        y = self.conv(x)
        return y + self.offset if torch.onnx.is_in_onnx_export() else y


def _folder_names(path):
    return sorted(p.name for p in path.parent.iterdir())


def test_parity_above_tolerance_fails_and_writes_nothing(tmp_path):
    target = tmp_path / "model.onnx"
    with pytest.raises(ExportError, match="differs from PyTorch by 0.01.*Nothing was written"):
        export_onnx(ExportsDifferently(0.01), target, SIZE, COCO17)
    assert not target.exists() and _folder_names(target) == []
    res = export_onnx(ExportsDifferently(0.01), target, SIZE, COCO17, tolerance=0.02)
    assert res["max_abs_diff_random"] == pytest.approx(0.01, rel=1e-3) and target.is_file()


def test_failed_export_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "model.onnx"
    export_onnx(ExportsDifferently(0.0), target, SIZE, COCO17)
    before = target.read_bytes()

    def invalid(model, *args, **kwargs):
        raise onnx.checker.ValidationError("node 3 is wrong")

    monkeypatch.setattr(onnx.checker, "check_model", invalid)
    with pytest.raises(ExportError, match="not valid ONNX"):
        export_onnx(build_model("tinypose", input_size=SIZE), target, SIZE, COCO17)
    assert target.read_bytes() == before and _folder_names(target) == ["model.onnx"]
    assert read_onnx_metadata(target).model_name == "ExportsDifferently"


def test_export_names_the_checkpoint_without_its_path(tmp_path, capsys):
    ckpt_dir = tmp_path / "private" / "runs"
    ckpt = ckpt_dir / "best.pth"
    model = build_model("tinypose", input_size=SIZE)
    save_checkpoint({"model": model.state_dict(), "meta": {"model_name": "tinypose", "input_size": list(SIZE)}}, ckpt)
    out = tmp_path / "tiny.onnx"
    assert main(["export", "tinypose", "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    assert f"tolerance {DEFAULT_TOLERANCE:g}" in capsys.readouterr().out
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert not [k for k, v in props.items() if str(tmp_path) in v or "private" in v], props
    assert json.loads(props["weights"]) == {"file": "best.pth", "sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest()}
    assert read_onnx_metadata(out).weights["file"] == "best.pth"


def test_cli_rejects_a_negative_tolerance(tmp_path, capsys):
    assert main(["export", "tinypose", "--input", "64x48", "--out", str(tmp_path / "t.onnx"),
                 "--tolerance", "-1"]) == 2
    assert "--tolerance" in capsys.readouterr().err and not (tmp_path / "t.onnx").exists()


def test_export_uses_the_registry_normalisation(tmp_path):
    model = build_model("tinypose", input_size=SIZE)
    meta = export_onnx(model, tmp_path / "t.onnx", SIZE, COCO17, check=False)["metadata"]
    assert (meta.mean, meta.std, meta.color_order) == (model.model_info.mean, model.model_info.std, "RGB")
    assert np.isfinite(meta.box_padding)


def test_graph_onnx_runtime_cannot_load_is_an_export_error(tmp_path, monkeypatch):
    import onnxruntime as ort

    def cannot_load(*args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Invalid attribute perm\n")

    monkeypatch.setattr(ort, "InferenceSession", cannot_load)
    with pytest.raises(ExportError, match="cannot load the exported graph.*perm\\). Nothing was written$"):
        export_onnx(ExportsDifferently(0.0), tmp_path / "m.onnx", SIZE, COCO17)
    assert not (tmp_path / "m.onnx").exists()


def test_an_input_size_whose_heatmaps_are_not_a_uniform_downscale_is_refused(tmp_path):
    # tinypose rounds 168/32 up, so at 224x168 it gives 56x44 heatmaps where x and y strides differ
    target = tmp_path / "odd.onnx"
    with pytest.raises(ExportError, match="224x168.*56x44 heatmaps are not the 224x168 input scaled by one factor"):
        export_onnx(build_model("tinypose", input_size=(224, 168)), target, (224, 168), COCO17)
    assert not target.exists()
