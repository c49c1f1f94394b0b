"""TopdownDataset items, build_dataset, and the ``slimpose data`` commands."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from slimpose.cli import main
from slimpose.codecs import build_codec
from slimpose.config import DatasetConfig, ExperimentConfig
from slimpose.data.dataset import TopdownDataset, build_dataset
from slimpose.data.synthetic import generate_synthetic_coco
from slimpose.errors import DataError

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return generate_synthetic_coco(tmp_path_factory.mktemp("syn"), 8, 4, seed=0)


def _cfg(paths, input_size=(128, 96)) -> ExperimentConfig:
    cfg = ExperimentConfig()
    cfg.data.input_size = input_size
    cfg.data.train = DatasetConfig(type="coco", ann_file=str(paths["train_ann"]), img_dir=str(paths["train_images"]))
    cfg.data.val = DatasetConfig(type="coco", ann_file=str(paths["val_ann"]), img_dir=str(paths["val_images"]))
    return cfg


def test_items_shapes_and_types(synthetic):
    cfg = _cfg(synthetic)
    codec = build_codec("heatmap", (128, 96))
    ds = build_dataset(cfg, "train", codec)
    assert isinstance(ds, TopdownDataset) and ds.input_size == (128, 96) and len(ds) == len(ds.source.instances)
    item = ds[0]
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 128, 96)
    assert item["target"].shape == (17, 32, 24) and item["target_weight"].shape == (17,)
    assert item["index"] == 0 and isinstance(item["rotation"], float)
    assert item["center"].shape == (2,) and item["scale"].shape == (2,)
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 3, 128, 96) and batch["index"].tolist() == [0, 1, 2, 3]
    assert batch["rotation"].dtype == torch.float64
    # the coordinate codec (RLE models) plugs in the same way
    item = build_dataset(cfg, "val", build_codec("coordinate", (128, 96)))[0]
    assert item["target"].shape == (17, 2) and item["rotation"] == 0.0


def test_augmentation_is_deterministic_per_seed_epoch_index(synthetic):
    cfg = _cfg(synthetic)
    codec = build_codec("heatmap", (128, 96))
    a, b = build_dataset(cfg, "train", codec), build_dataset(cfg, "train", codec)
    for i in (0, 3):
        assert torch.equal(a[i]["image"], b[i]["image"])
        assert torch.equal(a[i]["target"], b[i]["target"])
    same = all(torch.equal(a[i]["image"], a.__getitem__(i)["image"]) for i in range(3))
    assert same
    before = [a[i]["scale"] for i in range(6)]
    a.set_epoch(1)
    after = [a[i]["scale"] for i in range(6)]
    assert any(not torch.equal(x, y) for x, y in zip(before, after))
    cfg.train.seed = 1
    c = build_dataset(cfg, "train", codec)
    assert any(not torch.equal(c[i]["scale"], before[i]) for i in range(6))
    # validation: no randomness, the instance's own box
    val = build_dataset(cfg, "val", codec)
    inst = val.source.instances[0]
    np.testing.assert_allclose(val[0]["center"].numpy(), inst.center)
    np.testing.assert_allclose(val[0]["scale"].numpy(), inst.scale)


def test_limit_and_unreadable_image(synthetic, tmp_path):
    cfg = _cfg(synthetic)
    cfg.data.val.limit = 2
    ds = build_dataset(cfg, "val", build_codec("heatmap", (128, 96)))
    assert len(ds) == 2 and ds.source.skipped["limit"] > 0
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"definitely not an image")
    ds.source.instances[0].image_path = str(bad)
    with pytest.raises(DataError, match=r"broken\.jpg: image: cannot be decoded"):
        ds[0]
    ds.source.instances[1].image_path = str(tmp_path / "gone.jpg")
    with pytest.raises(DataError, match=r"gone\.jpg: image: image file not found"):
        ds[1]


@pytest.mark.realdata
@pytest.mark.skipif(not (SHARED_DATA / "coco-mini").is_dir(), reason="../shared/data/coco-mini not present")
def test_coco_mini_items():
    cfg = ExperimentConfig()
    root = SHARED_DATA / "coco-mini"
    cfg.data.train = DatasetConfig(type="coco", ann_file=str(root / "annotations/person_keypoints_train2017.json"),
                                   img_dir=str(root / "train2017"))
    ds = build_dataset(cfg, "train", build_codec("heatmap", (256, 192)))
    item = ds[5]
    assert item["image"].shape == (3, 256, 192) and item["target"].shape == (17, 64, 48)
    # labelled joints inside the crop carry weight, unlabelled ones none
    inst = ds.source.instances[5]
    assert item["target_weight"].sum() <= inst.visible.sum()


def test_data_commands(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["data", "synthetic", "--out", str(out), "--num-train", "3", "--num-val", "2", "--seed", "1"]) == 0
    assert len(list((out / "train").glob("*.jpg"))) == 3
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "data:\n  input_size: [128, 96]\n"
        f"  train: {{type: coco, ann_file: {out}/annotations/person_keypoints_train.json, img_dir: {out}/train}}\n"
        f"  val: {{type: coco, ann_file: {out}/annotations/person_keypoints_val.json, img_dir: {out}/val}}\n")
    png = tmp_path / "show.png"
    assert main(["data", "show", str(cfg), "--num", "4", "--out", str(png), "--set", "data.augment.rotation=10"]) == 0
    image = cv2.imread(str(png))
    assert image is not None and image.shape[0] >= 256
    assert main(["data", "show", str(cfg), "--split", "val", "--out", str(tmp_path / "v.png")]) == 0
    assert (tmp_path / "v.png").is_file()
    # a config pointing at missing data: a clear error, exit code 2
    assert main(["data", "show", str(cfg), "--set", f"data.train.ann_file={tmp_path}/nope.json"]) == 2
    assert "nope.json" in capsys.readouterr().err
