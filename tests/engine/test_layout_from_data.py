"""``data.layout: from_data`` end to end through the command line: a COCO-format file with
a keypoint category of its own (5 joints remapped from the synthetic data's 17) trains,
and the checkpoint alone (the training annotations moved away) is evaluated, exported
and run by ``slimpose infer``; a layout without left/right names trains too."""

import json

import pytest
import yaml

from slimpose.cli import main as cli_main
from slimpose.data.synthetic import generate_synthetic_coco
from slimpose.deploy.runtime import read_onnx_metadata
from slimpose.engine.checkpoint import load_checkpoint
from slimpose.keypoints import COCO17

from engine_testdata import small_config

HANDS_AND_FEET = {"nose": "nose", "left_hand": "left_wrist", "right_hand": "right_wrist",
                  "left_foot": "left_ankle", "right_foot": "right_ankle"}


def remap(src, dst, names: dict, skeleton):
    """``src`` (COCO-17 annotations) with only the joints ``names`` maps to, renamed."""
    data = json.loads(src.read_text())
    take = [COCO17.names.index(coco_name) for coco_name in names.values()]
    data["categories"] = [{"id": 1, "name": "critter", "supercategory": "critter", "keypoints": list(names),
                           "skeleton": skeleton}]
    for ann in data["annotations"]:
        kp = [ann["keypoints"][3 * j: 3 * j + 3] for j in take]
        ann["keypoints"] = [v for joint in kp for v in joint]
        ann["num_keypoints"] = sum(1 for joint in kp if joint[2] > 0)
    dst.write_text(json.dumps(data))
    return dst


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return generate_synthetic_coco(tmp_path_factory.mktemp("synth"), 12, 4, seed=3)


def config_for(synth, tmp_path, names, skeleton, **train):
    train_ann = remap(synth["train_ann"], tmp_path / "train_custom.json", names, skeleton)
    val_ann = remap(synth["val_ann"], tmp_path / "val_custom.json", names, skeleton)
    cfg = small_config({**synth, "train_ann": train_ann, "val_ann": val_ann}, **train)
    cfg["data"]["layout"] = "from_data"
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, train_ann


def test_a_custom_layout_trains_evaluates_exports_and_infers_from_the_checkpoint(synth, tmp_path, capsys,
                                                                                 one_torch_thread):
    config, train_ann = config_for(synth, tmp_path, HANDS_AND_FEET, [[1, 2], [1, 3], [2, 4], [3, 5]],
                                   epochs=12, milestones=[100], val_interval=0)
    run = tmp_path / "run"
    assert cli_main(["train", str(config), "--work-dir", str(run)]) == 0
    losses = [json.loads(line)["loss"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert len(losses) == 12 and losses[-1] < losses[0]  # 36 iterations of a seeded run
    meta = load_checkpoint(run / "last.pth")["meta"]["layout"]
    assert meta["names"] == list(HANDS_AND_FEET) and meta["flip_pairs"] == [[1, 2], [3, 4]]
    assert meta["skeleton"] == [[0, 1], [0, 2], [1, 3], [2, 4]] and meta["sigmas"] == [0.067] * 5

    # from here on the layout comes from the checkpoint and the ONNX file: not from the training file
    train_ann.rename(train_ann.with_suffix(".moved"))
    capsys.readouterr()
    out = tmp_path / "eval" / "metrics.json"
    assert cli_main(["eval", "--checkpoint", str(run / "last.pth"), "--out", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert {"AP", "PCK", "PCK@0.1"} <= set(metrics) and 0 <= metrics["PCK"] <= 1

    onnx = tmp_path / "custom.onnx"
    assert cli_main(["export", "tinypose", "--checkpoint", str(run / "last.pth"), "--out", str(onnx)]) == 0
    layout = read_onnx_metadata(onnx).layout
    assert layout.names == tuple(HANDS_AND_FEET) and layout.flip_pairs == ((1, 2), (3, 4))
    assert read_onnx_metadata(onnx).flip_index == (0, 2, 1, 4, 3)

    onnx_out = tmp_path / "eval_onnx" / "metrics.json"
    assert cli_main(["eval", "--onnx", str(onnx), str(config), "--out", str(onnx_out)]) == 0
    onnx_metrics = json.loads(onnx_out.read_text())
    assert onnx_metrics["AP"] == pytest.approx(metrics["AP"], abs=0.05)
    assert onnx_metrics["PCK"] == pytest.approx(metrics["PCK"], abs=0.05)

    image = next(synth["val_images"].iterdir())
    infer_dir = tmp_path / "infer"
    assert cli_main(["infer", str(onnx), str(image), "--out", str(infer_dir), "--threads", "1"]) == 0
    results = json.loads((infer_dir / "results.json").read_text())
    assert results and all(len(r["keypoints"]) == 5 * 3 for r in results)
    assert (infer_dir / f"{image.name}_pose.jpg").is_file()


def test_a_layout_without_left_and_right_trains_with_mirror_flips(synth, tmp_path, one_torch_thread):
    names = {"a": "nose", "b": "left_hip", "c": "right_ankle"}
    config, _ = config_for(synth, tmp_path, names, [], epochs=1, max_iters_per_epoch=2)
    run = tmp_path / "run"
    assert cli_main(["train", str(config), "--work-dir", str(run), "--set", "data.augment.flip_prob=1.0"]) == 0
    meta = load_checkpoint(run / "last.pth")["meta"]["layout"]
    assert meta["names"] == ["a", "b", "c"] and meta["flip_pairs"] == [] and meta["skeleton"] == []
