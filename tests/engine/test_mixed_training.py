"""Training on a mix of layouts: the joints a data set lacks add exactly no loss and no
gradient, and a mixed LSPET + coco-mini run trains end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from slimpose.config import config_from_dict
from slimpose.data.synthetic import generate_synthetic_coco
from slimpose.data.base import DataSource
from slimpose.data.dataset import TopdownDataset
from slimpose.data.mixed import MixedSource
from slimpose.data.transforms import NormalizeImage, build_pipeline
from slimpose.data.types import PersonInstance
from slimpose.engine.builders import build_codec_for, build_head_for, build_model_for
from slimpose.engine.checkpoint import load_checkpoint
from slimpose.heads.rle import RLEHead
from slimpose.keypoints import get_layout
from slimpose.models import get_model_entry

from engine_testdata import small_config, torchrun_train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[2]
COCO, LSP = get_layout("coco"), get_layout("lsp")
LACKING = [COCO.names.index(n) for n in COCO.names if n not in LSP.names]  # nose, eyes, ears
MODELS = {"tinypose": {"width": 8, "deconv_channels": 16}, "repnet_a": {}}


def _lsp_only_batch(tmp_path, cfg, codec) -> dict:
    """A batch of crops of an LSP-layout source mapped into COCO (so it lacks the face joints)."""
    rng = np.random.default_rng(0)
    image = tmp_path / "person.jpg"
    cv2.imwrite(str(image), rng.integers(0, 255, (120, 90, 3), dtype=np.uint8))
    instances = [PersonInstance(image_path=str(image), image_id=i, center=np.array([45.0, 60.0]),
                                scale=np.array([80.0, 106.0]),
                                keypoints=rng.uniform(20, 90, (14, 2)).astype(np.float32),
                                visible=np.ones(14, np.float32)) for i in range(4)]
    mixed = MixedSource(COCO)
    mixed.add("data.train_mix[0]", DataSource("lsp", LSP, instances), 1.0)
    info = get_model_entry(cfg.model.name).info
    pipeline = build_pipeline(cfg.data.augment, COCO, tuple(cfg.data.input_size), train=True,
                              normalization=NormalizeImage(info.mean, info.std, info.color_order == "RGB"))
    dataset = TopdownDataset(mixed, pipeline, codec, train=True, input_size=tuple(cfg.data.input_size))
    return next(iter(DataLoader(dataset, batch_size=4)))


def _final_rows(model, joints) -> list[torch.Tensor]:
    """The final layer's weight and bias gradient rows of ``joints``: a heatmap model's last
    conv has a channel per joint; a coordinate model's head Linear four outputs per joint."""
    if hasattr(model, "final"):
        layer, rows = model.final, joints
    else:
        layer, rows = model.head, [4 * j + c for j in joints for c in range(4)]
    return [layer.weight.grad[rows], layer.bias.grad[rows]]


@pytest.mark.parametrize("name,head_kind", [("tinypose", "model's"), ("repnet_a", "model's"), ("repnet_a", "rle")])
def test_joints_a_source_lacks_get_exactly_zero_loss_and_gradient(tmp_path, name, head_kind):
    torch.manual_seed(0)
    cfg = config_from_dict({"model": {"name": name, "kwargs": MODELS[name]},
                            "data": {"layout": "coco", "input_size": [64, 48]}})
    codec = build_codec_for(cfg, get_model_entry(name).output_kind)
    head = build_head_for(cfg) if head_kind == "model's" else RLEHead()
    model = build_model_for(cfg, head.model_kwargs())
    head.bind(model)
    model.train()
    batch = _lsp_only_batch(tmp_path, cfg, codec)
    weight = batch["target_weight"]
    assert not weight[:, LACKING].any() and weight.sum() > 0

    output = model(batch["image"])
    loss = head(output, batch["target"], weight)
    loss.backward()
    lacking_w, lacking_b = _final_rows(model, LACKING)
    assert torch.count_nonzero(lacking_w) == 0 and torch.count_nonzero(lacking_b) == 0
    supplied_w, _ = _final_rows(model, [j for j in range(17) if j not in LACKING])
    assert torch.count_nonzero(supplied_w) > 0  # the supplied joints do train

    # whatever the model predicts for the lacking joints, the loss is the same
    with torch.no_grad():
        moved = output.detach().clone()
        moved[:, LACKING] = moved[:, LACKING] + 3.0
        assert torch.equal(head(moved, batch["target"], weight), head(output.detach(), batch["target"], weight))


DATA = Path(os.environ.get("SLIMPOSE_DATA_ROOT", "data"))


@pytest.mark.skipif(not ((DATA / "lspet" / "joints.mat").is_file() and (DATA / "coco-mini").is_dir()),
                    reason="needs ../shared/data (lspet, coco-mini)")
def test_mixed_lspet_and_coco_mini_run_trains(tmp_path):
    """The shipped mixed config, cut to a few images and iterations, from random weights."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "slimpose", "train", str(REPO / "configs" / "lpn_50_coco17_mixed_192x144.yaml"),
         "--work-dir", str(tmp_path / "run"), "--set", "model.pretrained=''", "data.input_size=[64,48]",
         "data.batch_size=4", "data.val_batch_size=8", "data.train.last=20",
         "data.train_mix=[{type: lsp, ann_file: '${data_root}/lspet/joints.mat', first: 1, last: 12, ratio: 1}]",
         "train.epochs=1", "train.max_iters_per_epoch=3", "train.val_interval=1", "train.max_minutes=0"],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    said = proc.stdout + proc.stderr
    assert "data.train_mix[0] (lsp layout, 12 instances, ratio 1): supplies 12 of the 17 coco joints" in said
    assert "lacks nose, left_eye, right_eye, left_ear, right_ear (weight 0); not used: neck, head_top" in said
    assert (tmp_path / "run" / "last.pth").is_file()


def test_torchrun_two_processes_train_on_a_mix(tmp_path):
    """The ratio sampler shards the mixed epoch across DDP processes."""
    synth = generate_synthetic_coco(tmp_path / "synth", 12, 6, seed=4)
    cfg = small_config(synth, epochs=1)
    cfg["data"]["train_mix"] = [{"type": "coco", "ann_file": str(synth["val_ann"]),
                                 "img_dir": str(synth["val_images"]), "ratio": 3.0}]
    torchrun_train(cfg, tmp_path / "run", 29547)
    assert load_checkpoint(tmp_path / "run" / "last.pth")["epoch"] == 1
