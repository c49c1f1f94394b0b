"""Shipped weights: manifests, name resolution, packing a run, and the shipped files themselves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from slimpose.cli import main as cli_main
from slimpose.weights import (
    ShippedWeight,
    WeightsError,
    file_sha256,
    get_weight,
    list_weights,
    resolve_checkpoint,
    resolve_model_file,
)

REPO = Path(__file__).resolve().parents[2]
LSPET = REPO.parent / "shared" / "data" / "lspet"
needs_lspet = pytest.mark.skipif(not (LSPET / "joints.mat").is_file(), reason="needs ../shared/data/lspet")


def _fake_weight(directory: Path, name: str = "w", payload: bytes = b"onnx") -> Path:
    (directory / f"{name}.onnx").write_bytes(payload)
    manifest = {"name": name, "file": f"{name}.onnx", "model": "tinypose", "input_size": [128, 96],
                "layout": "lsp", "decode": "argmax", "val_pck": 61.5, "sha256": file_sha256(directory / f"{name}.onnx")}
    (directory / f"{name}.json").write_text(json.dumps(manifest))
    return directory / f"{name}.onnx"


def test_names_resolve_to_files_and_paths_pass_through(tmp_path):
    onnx_path = _fake_weight(tmp_path)
    (w,) = list_weights(tmp_path)
    assert (w.name, w.input_size, w.val_pck, w.checkpoint) == ("w", (128, 96), 61.5, None)
    assert resolve_model_file("w", tmp_path) == onnx_path
    assert resolve_model_file(onnx_path, tmp_path) == onnx_path
    w.verify()
    with pytest.raises(WeightsError, match="no shipped weight named 'nope'; shipped: w"):
        resolve_model_file("nope", tmp_path)
    with pytest.raises(WeightsError, match="missing.onnx: model file not found"):
        resolve_model_file(tmp_path / "missing.onnx", tmp_path)
    with pytest.raises(WeightsError, match="has no torch checkpoint"):
        resolve_checkpoint("w", tmp_path)


def test_a_damaged_file_or_manifest_is_named(tmp_path):
    onnx_path = _fake_weight(tmp_path)
    onnx_path.write_bytes(b"changed")
    with pytest.raises(WeightsError, match="sha256 differs"):
        get_weight("w", tmp_path).verify()
    (tmp_path / "bad.json").write_text(json.dumps({"name": "bad"}))
    with pytest.raises(WeightsError, match="bad.json: manifest lacks file, model"):
        list_weights(tmp_path)


def test_weights_command_lists_and_writes_json(tmp_path, capsys):
    _fake_weight(tmp_path)
    out = tmp_path / "list.json"
    assert cli_main(["weights", "--dir", str(tmp_path), "--json", str(out)]) == 0
    assert "val PCK@0.2  61.5" in capsys.readouterr().out
    (row,) = json.loads(out.read_text())
    assert {"name", "path", "model", "input_size", "layout", "val_pck"} <= set(row)
    assert Path(row["path"]).is_file()


@needs_lspet
@pytest.mark.realdata
def test_pack_a_run_then_use_it_by_name(tmp_path, capsys):
    from slimpose.deploy.runtime import OnnxPoseEstimator

    joints, images = str(LSPET / "joints.mat"), str(LSPET / "images")
    config = {
        "model": {"name": "tinypose", "kwargs": {"width": 8, "deconv_channels": 16}},
        "data": {"layout": "lsp", "input_size": [64, 48], "batch_size": 8, "workers": 0,
                 "train": {"type": "lsp", "ann_file": joints, "img_dir": images, "first": 1, "last": 16},
                 "val": {"type": "lsp", "ann_file": joints, "img_dir": images, "first": 8001, "last": 8008}},
        "train": {"epochs": 1, "val_interval": 1},
    }
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(json.dumps(config))
    run, shipped = tmp_path / "run", tmp_path / "shipped"
    shipped.mkdir()
    assert cli_main(["train", str(cfg_path), "--work-dir", str(run)]) == 0
    assert cli_main(["weights", "pack", str(run), "--name", "tiny_lsp", "--dir", str(shipped),
                     "--command", "slimpose train cfg.yaml"]) == 0
    w = get_weight("tiny_lsp", shipped)
    w.verify()
    m = w.manifest
    # a float file keeps float32 arithmetic on weights stored as float16 (half the file)
    stored = {init.data_type for init in onnx.load(str(w.path)).graph.initializer if len(init.dims) == 4}
    assert stored == {onnx.TensorProto.FLOAT16}
    assert m["command"] == "slimpose train cfg.yaml" and m["training"]["iterations"] == 2
    assert m["training"]["crops"] == 16 and "CPU" in m["training"]["hardware"]
    assert {"Head", "Shoulder", "Wrist", "Ankle", "PCK@0.1"} <= set(m["val_metrics"])
    assert all(0.0 <= v <= 100.0 for v in m["val_metrics"].values())
    assert 0.0 <= w.val_pck <= 100.0
    # a retrain under the same name replaces the files instead of adding new ones
    assert cli_main(["weights", "pack", str(run), "--name", "tiny_lsp", "--dir", str(shipped)]) == 0
    assert sorted(p.name for p in shipped.iterdir()) == ["tiny_lsp.json", "tiny_lsp.onnx", "tiny_lsp.pth"]
    est = OnnxPoseEstimator(resolve_model_file("tiny_lsp", shipped))
    kpts, scores = est(np.zeros((120, 80, 3), np.uint8))
    assert kpts.shape == (1, 14, 2) and scores.shape == (1, 14)
    import slimpose.weights

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(slimpose.weights, "WEIGHTS_DIR", shipped)
        assert OnnxPoseEstimator.from_pretrained("tiny_lsp").path == w.path
        with pytest.raises(WeightsError, match="no shipped weight named 'other'"):
            OnnxPoseEstimator.from_pretrained("other")
    # the fp16 checkpoint evaluates through the engine, by name
    import slimpose.weights

    assert resolve_checkpoint("tiny_lsp", shipped).name == "tiny_lsp.pth"
    out = tmp_path / "eval.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(slimpose.weights, "WEIGHTS_DIR", shipped)
        assert cli_main(["eval", "--checkpoint", "tiny_lsp", "--out", str(out)]) == 0
        # ... and its ONNX file through the torch-free runtime, on the manifest's validation set
        assert cli_main(["eval", "--onnx", "tiny_lsp", "--out", str(tmp_path / "onnx" / "metrics.json")]) == 0
        # ... and re-exports by name, e.g. with another decoding
        assert cli_main(["export", "tinypose", "--checkpoint", "tiny_lsp", "--decode", "dark",
                         "--out", str(tmp_path / "re.onnx")]) == 0
    assert OnnxPoseEstimator(tmp_path / "re.onnx").codec.decode_method == "dark"
    assert json.loads(out.read_text())["PCK"] == pytest.approx(m["checkpoint_val_pck"] / 100, abs=1e-3)
    assert json.loads((tmp_path / "onnx" / "metrics.json").read_text())["PCK"] == pytest.approx(w.val_pck / 100,
                                                                                              abs=1e-3)
    # INT8: the shipped file is quantised (calibrated on training crops) and its own figure is the manifest's
    assert cli_main(["weights", "pack", str(run), "--name", "tiny_lsp_int8", "--dir", str(shipped),
                     "--full-range"]) == 2
    assert "apply to pack --int8" in capsys.readouterr().err
    assert cli_main(["weights", "pack", str(run), "--name", "tiny_lsp_int8", "--dir", str(shipped), "--int8",
                     "--num-calib", "4", "--full-range", "--keep-float", "/stem/"]) == 0
    q = get_weight("tiny_lsp_int8", shipped)
    assert q.manifest["precision"] == "int8" and m.get("precision") == "float32"
    quantization = q.manifest["quantization"]
    assert quantization["keep_float"] == ["/stem/"] and quantization["float_nodes"] >= 1
    assert quantization["weights"] == "int8 per-channel" and quantization["num_calibration_crops"] == 4
    assert q.manifest["checkpoint_val_pck"] == pytest.approx(m["checkpoint_val_pck"])
    assert any(n.op_type == "QuantizeLinear" for n in onnx.load(str(q.path)).graph.node)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(slimpose.weights, "WEIGHTS_DIR", shipped)
        assert cli_main(["eval", "--onnx", "tiny_lsp_int8", "--out", str(tmp_path / "q" / "metrics.json")]) == 0
    assert 100 * json.loads((tmp_path / "q" / "metrics.json").read_text())["PCK"] == pytest.approx(q.val_pck, abs=0.01)
    # the decoding a weight ships with can differ from the run's, and the figure is measured with it
    assert cli_main(["weights", "pack", str(run), "--name", "tiny_lsp_dark", "--dir", str(shipped),
                     "--decode", "dark"]) == 0
    d = get_weight("tiny_lsp_dark", shipped)
    assert d.manifest["decode"] == "dark" and d.manifest["config"]["test"]["decode"] == "dark"
    assert OnnxPoseEstimator(d.path).codec.decode_method == "dark"


SHIPPED = list_weights()
SHIPPED_LSP = [w for w in SHIPPED if w.val_pck is not None]
SHIPPED_COCO = [w for w in SHIPPED if w.val_ap is not None]
COCO_MINI = REPO.parent / "shared" / "data" / "coco-mini"
needs_coco_mini = pytest.mark.skipif(not (COCO_MINI / "annotations").is_dir(), reason="needs ../shared/data/coco-mini")


@pytest.mark.parametrize("weight", SHIPPED, ids=[w.name for w in SHIPPED])
def test_shipped_weight_matches_its_manifest(weight: ShippedWeight):
    weight.verify()
    m = weight.manifest
    assert {"command", "config", "training", "val_metrics", "checkpoint_sha256"} <= set(m)
    assert m["training"]["from_scratch"] == (not m["config"]["model"]["pretrained"])
    assert m["training"]["minutes"] > 0 and "CPU" in m["training"]["hardware"]
    assert weight.checkpoint is not None and file_sha256(weight.checkpoint) == m["checkpoint_sha256"]
    total = sum(p.stat().st_size for w in SHIPPED for p in (w.path, w.checkpoint) if p is not None)
    assert total < 50e6  # all shipped weights together: the project's budget


@needs_lspet
@pytest.mark.realdata
@pytest.mark.parametrize("weight", SHIPPED_LSP, ids=[w.name for w in SHIPPED_LSP])
def test_shipped_weight_finds_the_joints_of_real_val_images(weight: ShippedWeight):
    """Torch-free: the runtime alone, on LSPET val images it was not trained on."""
    from slimpose.data.lsp import LspSource
    from slimpose.data.base import read_image
    from slimpose.deploy.runtime import OnnxPoseEstimator
    from slimpose.keypoints import get_layout
    from slimpose.metrics.pck import lsp_pck

    layout = get_layout("lsp")
    h, w = weight.input_size
    source = LspSource(LSPET / "joints.mat", LSPET / "images", layout, w / h, first=8001, last=8040)
    est = OnnxPoseEstimator(resolve_model_file(weight.name))
    preds, gts, masks = [], [], []
    for inst in source.instances:
        kpts, _ = est(read_image(inst.image_path), inst.extra["bbox"][None], flip=True)
        preds.append(kpts[0])
        gts.append(inst.keypoints)
        masks.append(inst.visible > 0)
    pck = lsp_pck(np.stack(preds), np.stack(gts), np.stack(masks), layout)["PCK"]
    assert pck >= 0.9 * weight.val_pck / 100, (weight.name, pck)


@needs_lspet
@pytest.mark.realdata
@pytest.mark.parametrize("weight", SHIPPED_LSP, ids=[w.name for w in SHIPPED_LSP])
def test_shipped_weight_reproduces_its_manifest_figure(weight: ShippedWeight, tmp_path, monkeypatch):
    """`slimpose eval --onnx NAME`: the shipped ONNX file, torch-free, on the whole validation
    split its manifest names (LSPET im08001-im09000, flip test) gives the manifest's PCK."""
    monkeypatch.chdir(REPO)  # the manifest's data paths are relative to the clone
    out = tmp_path / "metrics.json"
    assert cli_main(["eval", "--onnx", weight.name, "--out", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert 100 * metrics["PCK"] == pytest.approx(weight.val_pck, abs=0.05)
    for group in ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle"):
        assert 100 * metrics[group] == pytest.approx(weight.manifest["val_metrics"][group], abs=0.05), group


@pytest.mark.parametrize("weight", SHIPPED_LSP[:1], ids=[w.name for w in SHIPPED_LSP[:1]])
def test_eval_onnx_refuses_a_file_without_config_or_of_another_layout(weight: ShippedWeight, capsys):
    for argv, message in (
        (["eval", "--onnx", str(weight.path)], "give the experiment CONFIG"),
        (["eval", "--onnx", str(weight.path), str(REPO / "configs" / "lpn_50_cocomini_256x192.yaml")],
         "a 'lsp' model (14 keypoints) cannot be scored on 'coco' data"),
        (["eval", "--onnx", weight.name, "--checkpoint", weight.name], "not both"),
    ):
        assert cli_main(argv) != 0
        assert message in capsys.readouterr().err


@needs_coco_mini
@pytest.mark.realdata
@pytest.mark.parametrize("weight", SHIPPED_COCO, ids=[w.name for w in SHIPPED_COCO])
def test_shipped_coco_weight_reproduces_its_figures(weight: ShippedWeight, tmp_path, monkeypatch):
    """`slimpose eval --onnx NAME` on the manifest's val set (coco-mini val2017, ground-truth
    boxes) gives its AP, and `eval --results --joints` on those predictions its AP over the
    named joints."""
    monkeypatch.chdir(REPO)
    out = tmp_path / "metrics.json"
    assert cli_main(["eval", "--onnx", weight.name, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["AP"] == pytest.approx(weight.val_ap, abs=5e-4)
    subset = weight.manifest["val_metrics_joints"]
    ann = weight.manifest["config"]["data"]["val"]["ann_file"]
    assert cli_main(["eval", "--ann", ann, "--results", str(tmp_path / "results_keypoints.json"),
                     "--joints", ",".join(subset["joints"]), "--out", str(tmp_path / "joints.json")]) == 0
    assert json.loads((tmp_path / "joints.json").read_text())["AP"] == pytest.approx(subset["AP"], abs=5e-4)


def test_pack_a_coco_run_records_ap_and_the_ap_of_named_joints(tmp_path, capsys):
    """A COCO-format run packs with its AP as the figure; --set moves the figure to another
    val set, --joints adds the AP over some joints; the listing prints both."""
    from slimpose.data.synthetic import generate_synthetic_coco

    paths = generate_synthetic_coco(tmp_path / "synth", 8, 4, seed=1)
    config = {
        "model": {"name": "tinypose", "kwargs": {"width": 8, "deconv_channels": 16}},
        "data": {"input_size": [64, 48], "batch_size": 4, "workers": 0,
                 "train": {"type": "coco", "ann_file": str(paths["train_ann"]), "img_dir": str(paths["train_images"])},
                 "val": {"type": "coco", "ann_file": str(paths["train_ann"]), "img_dir": str(paths["train_images"])}},
        "train": {"epochs": 1, "val_interval": 1, "max_iters_per_epoch": 1},
    }
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(json.dumps(config))
    run, shipped = tmp_path / "run", tmp_path / "shipped"
    shipped.mkdir()
    assert cli_main(["train", str(cfg_path), "--work-dir", str(run)]) == 0
    body = "left_shoulder,right_shoulder,left_hip,right_hip"
    assert cli_main(["weights", "pack", str(run), "--name", "tiny_coco", "--dir", str(shipped), "--joints", body,
                     "--set", f"data.val.ann_file={paths['val_ann']}", f"data.val.img_dir={paths['val_images']}"]) == 0
    w = get_weight("tiny_coco", shipped)
    assert w.val_pck is None and 0.0 <= w.val_ap <= 1.0
    m = w.manifest
    assert m["config"]["data"]["val"]["ann_file"] == str(paths["val_ann"])
    assert str(paths["val_ann"]) in m["val_set"] and "ground-truth boxes" in m["val_set"]
    assert m["val_metrics"]["AP"] == w.val_ap and m["checkpoint_val_ap"] == w.val_ap
    assert m["val_metrics_joints"]["joints"] == body.split(",") and 0.0 <= m["val_metrics_joints"]["AP"] <= 1.0
    capsys.readouterr()
    assert cli_main(["weights", "--dir", str(shipped)]) == 0
    assert f"val AP {w.val_ap:.3f} (4 joints {m['val_metrics_joints']['AP']:.3f})" in capsys.readouterr().out
    assert cli_main(["weights", "--dir", str(shipped), "--markdown"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| name | model | input | precision | decode | val AP | AP50 |")
    assert f"| `tiny_coco` | `tinypose` | 64x48 | float32 |" in table[2] and f"| {w.val_ap:.3f} |" in table[2]
    assert cli_main(["weights", "pack", str(run), "--name", "x", "--dir", str(shipped), "--joints", "nose",
                     "--set", "data.val.type=lsp"]) == 2


def test_weights_command_prints_a_markdown_table_from_the_manifests(tmp_path, capsys):
    _fake_weight(tmp_path)  # a manifest without per-joint figures or training record
    assert cli_main(["weights", "--dir", str(tmp_path), "--markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| name | model | input | precision | decode | val PCK@0.2 | Head |")
    assert lines[1].count("|---") == lines[0].count(" | ") + 1
    assert lines[2:] == ["| `w` | `tinypose` | 128x96 | float32 | argmax | 61.5 | - | - | - | - | - | - | - | - | - |"]


def test_markdown_table_of_the_shipped_weights_carries_their_manifest_figures(capsys):
    assert cli_main(["weights", "--markdown"]) == 0
    out = capsys.readouterr().out
    for weight in SHIPPED_LSP:
        metrics, train = weight.manifest["val_metrics"], weight.manifest["training"]
        assert (f"| `{weight.name}` | `{weight.model}` | {weight.input_size[0]}x{weight.input_size[1]} | "
                f"{weight.manifest['precision']} | {weight.decode} | {weight.val_pck:.1f} | {metrics['Head']:.1f} |") in out
        start = f", from `{Path(train['pretrained']).stem}`" if train.get("pretrained") else ""
        assert f"| {metrics['PCK@0.1']:.1f} | {train['iterations']:,} iterations, {train['minutes']} min{start} |" in out


def test_weights_beside_movenet_are_listed_and_tabled_with_the_recorded_figures(tmp_path, capsys):
    _fake_weight(tmp_path, "fast")
    manifest = json.loads((tmp_path / "fast.json").read_text())
    manifest["vs_movenet"] = {"pck12": 57.0, "latency_ratio": 0.95, "latency_ratios": [0.9, 0.95, 1.0],
                              "pck12_flip": 58.5, "latency_ratio_flip": 1.9, "latency_ratios_flip": [1.9, 1.9, 2.0],
                              "movenet_pck12": 56.2, "split": "LSPET im08001-im09000", "images": 720, "threads": 2,
                              "cpu": "Some CPU", "command": "python tools/compare_movenet.py fast --runs 3"}
    (tmp_path / "fast.json").write_text(json.dumps(manifest))
    assert cli_main(["weights", "--dir", str(tmp_path)]) == 0
    assert ("beside MoveNet Lightning (56.2): PCK@0.2 12 joints 57.0 at 0.95x its latency, 58.5 at 1.90x "
            "with the flip test") in capsys.readouterr().out
    assert cli_main(["weights", "--dir", str(tmp_path), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| MoveNet Lightning int8 192x192 | 56.2 | 1.00 | - | - |\n| `fast` | 57.0 | 0.95 | 58.5 | 1.90 |" in out
    assert ("LSPET im08001-im09000 (720 people), 2 threads on Some CPU; each latency ratio is the median of 3 runs "
            "(3 with the flip test)") in out

    _fake_weight(tmp_path, "later")  # measured in another sitting: the footer names both commands
    later = dict(manifest["vs_movenet"], latency_ratios=[2.0], latency_ratios_flip=[4.0],
                 command="python tools/compare_movenet.py later --runs 1 --flip-runs 1")
    (tmp_path / "later.json").write_text(json.dumps(dict(json.loads((tmp_path / "later.json").read_text()),
                                                         vs_movenet=later)))
    assert cli_main(["weights", "--dir", str(tmp_path), "--markdown"]) == 0
    assert ("the median of 3 runs (3 with the flip test) of `python tools/compare_movenet.py fast --runs 3`; of 1 run "
            "(1 with the flip test) of `python tools/compare_movenet.py later --runs 1 --flip-runs 1`, each weight "
            "beside MoveNet alone.") in capsys.readouterr().out


def test_the_movenet_picture_rows_agree_with_the_manifests():
    rows = json.loads((REPO / "docs" / "movenet_tradeoff.json").read_text())
    assert rows[0]["reference"] and rows[0]["latency_ratio"] == 1.0
    recorded = {w.name: w.manifest["vs_movenet"] for w in list_weights() if "vs_movenet" in w.manifest}
    assert recorded and {r["name"] for r in rows[1:]} == {n for name in recorded for n in (name, f"{name}, flip")}
    for row in rows[1:]:
        vs = recorded[row["name"].removesuffix(", flip")]
        suffix = "_flip" if row["name"].endswith(", flip") else ""
        assert (row["pck12"], row["latency_ratio"]) == (vs[f"pck12{suffix}"], vs[f"latency_ratio{suffix}"])
        assert rows[0]["pck12"] == vs["movenet_pck12"]
