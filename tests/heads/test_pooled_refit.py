"""The closed-form refit of RepNet's pooled Linear (heads.pooled_refit), on synthetic data."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from slimpose.config import config_from_dict
from slimpose.data.dataset import build_dataset
from slimpose.data.synthetic import generate_synthetic_coco
from slimpose.engine.checkpoint import load_checkpoint, load_model_weights
from slimpose.engine.distributed import init_distributed
from slimpose.engine.train import Trainer
from slimpose.errors import ConfigError
from slimpose.heads.pooled_refit import distances, refit_pooled_head, robust_ridge

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from engine_testdata import small_config, torchrun_train  # noqa: E402


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return generate_synthetic_coco(tmp_path_factory.mktemp("synth"), 12, 4, seed=3)


def repnet_config(synth, **head):
    cfg = small_config(synth, epochs=1, val_interval=0, max_iters_per_epoch=1)
    cfg["model"] = {"name": "repnet_a", "kwargs": {"init_std": 0.001}, "head": head}
    cfg["data"]["input_size"] = [64, 64]
    return cfg


def explicit_ridge(trainer, ridge):
    """Every training crop and its mirror image, the weighted ridge regression from
    [pooled features, 1] to the labels solved joint by joint in numpy: (K, C+1, 2)."""
    model, codec = trainer.model.eval(), trainer.codec
    crops = build_dataset(trainer.cfg, "train", codec, augment=False)
    flip_index = crops.source.layout.flip_index
    feats, joints, weights = [], [], []
    with torch.no_grad():
        for i in range(len(crops)):
            item = crops[i]
            image, label, w = item["image"][None], item["target"][None].numpy(), item["target_weight"][None].numpy()
            for x, lab, wt in ((image, label, w), (image.flip(-1), codec.flip(label, flip_index), w[:, flip_index])):
                pooled = model.fused_features(x).mean((2, 3)).double().numpy()
                feats.append(np.concatenate([pooled, np.ones((1, 1))], 1))
                joints.append(lab)
                weights.append(wt)
    f, y, w = np.concatenate(feats), np.concatenate(joints).astype(np.float64), np.concatenate(weights)
    penalty = np.full(f.shape[1], ridge)
    penalty[-1] = 0.0
    return np.stack([np.linalg.solve(f.T @ (w[:, k, None] * f) + np.diag(penalty), f.T @ (w[:, k, None] * y[:, k]))
                     for k in range(y.shape[1])])


def test_plain_refit_is_the_weighted_ridge_regression_and_leaves_the_rest(synth, tmp_path):
    trainer = Trainer(config_from_dict(repnet_config(synth, refit_crops=1000, refit_ridge=1e-3,
                                                           refit_huber=0.0)), tmp_path)
    head = trainer.model.head
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    result = trainer.head.stage_end(trainer)["head_refit"]
    k = head.out_features // 4
    assert result["crops"] == len(trainer.train_set) < 1000 and result["joints_fitted"] == k
    assert result["rms_after"] < result["rms_before"]
    expected = explicit_ridge(trainer, 1e-3)
    w, b = head.weight.detach().view(k, 4, -1), head.bias.detach().view(k, 4)
    np.testing.assert_allclose(w[:, :2].transpose(1, 2).numpy(), expected[:, :-1], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(b[:, :2].numpy(), expected[:, -1], rtol=1e-3, atol=1e-5)
    assert torch.equal(w[:, 2:], before["head.weight"].view(k, 4, -1)[:, 2:])  # the sigma rows: as trained
    assert torch.equal(b[:, 2:], before["head.bias"].view(k, 4)[:, 2:])
    assert all(torch.equal(p, before[name]) for name, p in trainer.model.named_parameters() if not name.startswith("head."))


def test_huber_refit_is_not_pulled_by_outliers():
    gen = torch.Generator().manual_seed(0)
    feats = torch.cat([torch.rand(400, 6, generator=gen, dtype=torch.float64), torch.ones(400, 1, dtype=torch.float64)], 1)
    truth = torch.randn(2, 7, 2, generator=gen, dtype=torch.float64) * 0.1  # two joints
    joints = torch.einsum("nc,kcj->nkj", feats, truth)
    joints[:40] += 0.5  # a tenth of the samples far off, all to one side
    weights = torch.ones(400, 2, dtype=torch.float64)
    info = init_distributed()
    plain, mass = robust_ridge(feats, joints, weights, 1e-6, 0.0, info)
    robust, _ = robust_ridge(feats, joints, weights, 1e-6, 0.02, info)
    assert torch.equal(mass, torch.full((2,), 400.0, dtype=torch.float64))
    clean = feats[40:], joints[40:]
    assert distances(*clean, plain).mean() > 0.04  # least squares follows the outliers
    assert distances(*clean, robust).mean() < 0.004


class PeakAt(nn.Module):
    """A stand-in heatmap decoder whose every joint peaks at one cell."""

    def __init__(self, k, row, col):
        super().__init__()
        self.k, self.row, self.col = k, row, col

    def forward(self, fused):
        maps = torch.zeros(fused.shape[0], self.k, 16, 16)
        maps[:, :, self.row, self.col] = 1.0
        return maps


def test_refit_to_the_heatmap_teacher_reads_the_decoders_maximum(synth, tmp_path):
    cfg = repnet_config(synth, dense_weight=10.0, teacher="auxiliary_heatmaps", heatmap_weight=1000.0,
                        refit_crops=1000, refit_ridge=1e3)
    cfg["model"]["kwargs"]["auxiliary_heatmaps"] = True
    trainer = Trainer(config_from_dict(cfg), tmp_path)
    k = trainer.model.head.out_features // 4
    trainer.model.heatmap_decoder = PeakAt(k, row=3, col=12)
    trainer.head.stage_end(trainer)
    # The teacher says (12.5 / 16, 3.5 / 16) for every crop; a strong ridge leaves only the bias to say it.
    out = trainer.model.eval()(torch.randn(4, 3, 64, 64))
    np.testing.assert_allclose(out[..., 0].detach().numpy(), 12.5 / 16, atol=2e-3)
    np.testing.assert_allclose(out[..., 1].detach().numpy(), 3.5 / 16, atol=2e-3)


def test_joints_never_labelled_keep_their_rows(synth, tmp_path):
    trainer = Trainer(config_from_dict(repnet_config(synth, refit_crops=1000)), tmp_path)
    crops = build_dataset(trainer.cfg, "train", trainer.codec, augment=False)
    item = crops[0]
    item["target_weight"][:] = 0.0

    class Unlabelled(torch.utils.data.Dataset):
        source = crops.source

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return item

    before = trainer.model.head.weight.detach().clone()
    result = refit_pooled_head(trainer.model, Unlabelled(), trainer.codec, crops=3, ridge=1.0, huber=0.05,
                               teacher="ground_truth", seed=0, batch_size=2, workers=0, info=init_distributed())
    assert result["joints_fitted"] == 0
    assert torch.equal(trainer.model.head.weight, before)


def test_training_refits_at_the_end_and_checkpoints_the_refit_head(synth, tmp_path):
    trainer = Trainer(config_from_dict(repnet_config(synth, refit_crops=5)), tmp_path / "run")
    trainer.fit()
    record = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert record["head_refit"]["crops"] == 5
    saved = load_checkpoint(tmp_path / "run" / "last.pth")["model"]
    assert torch.equal(saved["head.weight"], trainer.model.head.weight.detach())


def test_a_refit_needs_a_pooled_rle_head(synth, tmp_path):
    cfg = small_config(synth)
    cfg["model"]["head"] = {"refit_crops": 10}
    with pytest.raises(ConfigError, match=r"model.head: HeatmapHead takes no options, got refit_crops"):
        Trainer(config_from_dict(cfg), tmp_path)


def test_torchrun_processes_sum_their_shares_into_one_solution(synth, tmp_path):
    torchrun_train(repnet_config(synth, refit_crops=1000, refit_ridge=1e-2), tmp_path / "run", 29537)
    assert json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])["head_refit"]["crops"] == 20  # every instance
    # The features did not change after the refit, so one process reading every crop must
    # find the head the two processes found together.
    trainer = Trainer(config_from_dict(repnet_config(synth, refit_crops=1000, refit_ridge=1e-2)),
                      tmp_path / "single")
    load_model_weights(trainer.model, tmp_path / "run" / "last.pth")
    saved = trainer.model.head.weight.detach().clone()
    trainer.head.stage_end(trainer)
    torch.testing.assert_close(trainer.model.head.weight.detach(), saved, rtol=1e-4, atol=1e-5)
