"""LGM-Pose: LARM's patch maths, SFusion's shuffle, input-size-tied weights, every
registered variant forward/backward, the faster formulations against the straightforward
ones, ONNX export, the ablation figures and a few engine training steps."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from slimpose.deploy.complexity import count_macs, count_params
from slimpose.models.layers import channel_shuffle
from slimpose.models.lgm_pose import (
    LARM,
    MobileViMBlock,
    TransformerMixer,
    _even,
    fold_patches,
    make_fusion,
    unfold_patches,
)
from slimpose.models.registry import build_model, get_model_entry, list_models

VARIANTS = [n for n in list_models() if n.startswith("lgm_pose")]
SMALL = (96, 64)  # stride 32 is 3x2: also runs the odd-size resize path


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """O(1) weights, norm scales around 1 and biases around 0, so that no path is ~0."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            for name, p in m.named_parameters(recurse=False):
                if p.dim() > 1:
                    p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
                else:
                    p.copy_((1.0 if name == "weight" else 0.0) + 0.1 * torch.randn(p.shape, generator=g))
    return module


def test_all_variants_registered_and_tied_to_input_size():
    assert {"lgm_pose", "lgm_pose_mobilevit", "lgm_pose_fusion_none", "lgm_pose_fusion_conv",
            "lgm_pose_fusion_dw_g1", "lgm_pose_fusion_dw_g2"} <= set(VARIANTS)
    for name in VARIANTS:
        entry = get_model_entry(name)
        assert entry.info.input_size_tied and entry.output_kind == "heatmap" and entry.info.output_stride == 4


def test_unfold_fold_is_an_exact_inverse():
    x = torch.randn(2, 5, 8, 6)
    u = unfold_patches(x)
    assert u.shape == (2, 4, 5, 12)
    assert torch.equal(fold_patches(u, 8, 6), x)  # bit for bit
    # u[b, p, c, n]: position p = (i, j) of patch n = (row, col), patches in row-major order
    for p, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        for n in (0, 4, 11):
            row, col = divmod(n, 3)
            assert torch.equal(u[:, p, :, n], x[:, :, 2 * row + i, 2 * col + j])


def _changed_positions(fn, x: torch.Tensor, pixel: tuple[int, int], channel: int = 1) -> torch.Tensor:
    bumped = x.clone()
    bumped[0, channel, pixel[0], pixel[1]] += 1.0
    with torch.no_grad():
        diff = (fn(bumped) - fn(x)).abs()
    assert diff.sum(dim=(2, 3))[0, torch.arange(x.shape[1]) != channel].max() == 0  # channels stay separate
    return diff[0, channel] > 1e-6


def test_n_mlp_mixes_across_patches_and_p_mlp_within_a_patch():
    torch.manual_seed(0)
    h, w = 8, 6
    larm = _randomise(LARM(num_patches=h * w // 4)).eval()
    x = torch.randn(1, 3, h, w)
    pixel = (5, 2)  # position (1, 0) of patch (2, 1)

    def n_mlp(t):
        return fold_patches(larm.token_mlp(unfold_patches(t)), h, w)

    def p_mlp(t):
        return fold_patches(larm._mix_within_patches(unfold_patches(t)), h, w)

    same_position = torch.zeros(h, w, dtype=torch.bool)
    same_position[pixel[0] % 2::2, pixel[1] % 2::2] = True
    same_patch = torch.zeros(h, w, dtype=torch.bool)
    same_patch[4:6, 2:4] = True

    reached = _changed_positions(n_mlp, x, pixel)
    assert torch.equal(reached, same_position)  # that position in every patch, nothing else
    reached = _changed_positions(p_mlp, x, pixel)
    assert torch.equal(reached, same_patch)  # the four pixels of its own patch, nothing else
    reached = _changed_positions(lambda t: fold_patches(larm(unfold_patches(t)), h, w), x, pixel)
    assert reached.all()  # together: the whole map, from one pixel


def test_fast_p_mlp_equals_the_transposed_formulation():
    torch.manual_seed(0)
    larm = _randomise(LARM(num_patches=24), seed=1)
    u = torch.randn(2, 4, 7, 24)
    straightforward = larm.pixel_mlp(u.movedim(1, -1)).movedim(-1, 1)
    # two matmul layouts: elementwise 1e-5 relative, and 1e-5 of the map's scale near zero
    atol = 1e-5 * max(1.0, straightforward.abs().max().item())
    torch.testing.assert_close(larm._mix_within_patches(u), straightforward, rtol=1e-5, atol=atol)


def _reference_block(block: MobileViMBlock, x: torch.Tensor) -> torch.Tensor:
    """MobileViM as the paper draws it: 1x1 to d on the map, unfold at width d, N-MLP,
    P to the last axis, P-MLP, back, fold, 1x1 back (MobileViT's resize for odd sides)."""
    y = block.to_dim(block.local(x))
    h, w = y.shape[-2:]
    he, we = _even(h), _even(w)
    if (he, we) != (h, w):
        y = F.interpolate(y, size=(he, we), mode="bilinear", align_corners=False)
    u = unfold_patches(y)  # (B, P, d, N)
    if isinstance(block.mixer, LARM):
        u = block.mixer.token_mlp(u)
        u = block.mixer.pixel_mlp(u.movedim(1, -1)).movedim(-1, 1)
    else:
        u = block.mixer(u)
    y = fold_patches(u, he, we)
    if (he, we) != (h, w):
        y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
    return block.fuse(torch.cat([x, block.from_dim(y)], dim=1))


@pytest.mark.parametrize("size", [(8, 6), (6, 5)])
@pytest.mark.parametrize("mixer", ["larm", "transformer"])
def test_mobilevim_block_equals_the_straightforward_formulation(size, mixer):
    torch.manual_seed(0)
    num_patches = _even(size[0]) * _even(size[1]) // 4
    glob = LARM(num_patches) if mixer == "larm" else TransformerMixer(32, 2)
    block = _randomise(MobileViMBlock(6, 32, glob), seed=2).eval()
    x = torch.randn(2, 6, *size)
    with torch.no_grad():
        ref = _reference_block(block, x)
        torch.testing.assert_close(block(x), ref, rtol=1e-5, atol=1e-5 * max(1.0, ref.abs().max().item()))


def test_channel_shuffle_order():
    x = torch.arange(8.0).reshape(1, 8, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 4, 1, 5, 2, 6, 3, 7]
    assert channel_shuffle(x, 4).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


@pytest.mark.parametrize("kind, skip_reaches_group0", [("sfusion", True), ("group", False)])
def test_sfusion_shuffle_lets_each_group_see_both_inputs(kind, skip_reaches_group0):
    torch.manual_seed(0)
    fusion = _randomise(make_fusion(kind, 8, 4)).eval()
    up, skip = torch.randn(1, 4, 5, 5), torch.randn(1, 4, 5, 5)
    bumped = skip.clone()
    bumped[:, 0] += 1.0
    with torch.no_grad():
        diff = (fusion(up, bumped) - fusion(up, skip)).abs().sum(dim=(0, 2, 3))
    # output channels 0-1 come from the first group: only up channels without the shuffle,
    # up channels 0-1 and skip channels 0-1 with it
    assert (diff[:2].max() > 1e-6) == skip_reaches_group0
    assert (diff[2:].max() > 1e-6) != skip_reaches_group0


def test_parameter_count_depends_on_input_size():
    counts = {size: count_params(build_model("lgm_pose", input_size=size)) for size in [(256, 192), (256, 256), (384, 288)]}
    assert len(set(counts.values())) == 3
    assert counts[(256, 192)] < counts[(256, 256)] < counts[(384, 288)]


def test_wrong_input_size_is_a_clear_error():
    with pytest.raises(ValueError, match=r"multiple of 32 .*got 64x48"):
        build_model("lgm_pose", input_size=(64, 48))
    model = build_model("lgm_pose", input_size=SMALL).eval()
    with pytest.raises(ValueError, match="built for 96x64, got 64x64"):
        model(torch.zeros(1, 3, 64, 64))


@pytest.mark.parametrize("name", VARIANTS)
def test_forward_backward(name):
    torch.manual_seed(0)
    model = build_model(name, num_joints=5, input_size=SMALL).train()
    out = model(torch.randn(2, 3, *SMALL))
    assert out.shape == (2, 5, SMALL[0] // 4, SMALL[1] // 4)
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    assert model.final.weight.grad.abs().sum() > 0


def test_checkpoint_at_another_input_size_is_refused(tmp_path):
    from slimpose.engine.checkpoint import load_model_weights, save_checkpoint
    from slimpose.errors import CheckpointError

    trained = build_model("lgm_pose", input_size=(256, 192))
    save_checkpoint({"model": trained.state_dict(), "meta": {"model_name": "lgm_pose", "input_size": [256, 192]}},
                    tmp_path / "coco.pth")
    with pytest.raises(CheckpointError, match=r"(?i)input size"):
        load_model_weights(build_model("lgm_pose", input_size=(256, 256)), tmp_path / "coco.pth")
    load_model_weights(build_model("lgm_pose", input_size=(256, 192)), tmp_path / "coco.pth")  # same size loads


# Table 5 figures that the registry does not hold (the table cannot hold for one network;
# module docstring): the reachable ones are checked here at the registry tolerance.
REACHABLE_ABLATION_GMACS = {"lgm_pose_fusion_none": 0.7}


@pytest.mark.parametrize("name, gmacs", sorted(REACHABLE_ABLATION_GMACS.items()))
def test_reachable_ablation_figures(name, gmacs):
    model = build_model(name, num_joints=16, input_size=(256, 256))
    assert count_macs(model, (256, 256)) / 1e9 == pytest.approx(gmacs, rel=0.05)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_export_matches_torch(tmp_path):
    pytest.importorskip("onnxruntime")
    from slimpose.deploy.export import export_onnx
    from slimpose.keypoints import get_layout

    torch.manual_seed(0)
    model = build_model("lgm_pose", input_size=SMALL)
    nn.init.normal_(model.final.weight, std=0.1)
    with torch.no_grad():
        model.train()(torch.randn(4, 3, *SMALL))  # BN statistics of a real batch
    res = export_onnx(model.eval(), tmp_path / "lgm.onnx", SMALL, get_layout("coco"))
    assert res["max_abs_output_random"] > 1e-2
    assert res["max_abs_diff_random"] < 1e-4 * max(1.0, res["max_abs_output_random"])


def test_a_few_training_steps_through_the_engine(tmp_path):
    from slimpose.config import config_from_dict
    from slimpose.data.synthetic import generate_synthetic_coco
    from slimpose.engine.train import Trainer

    paths = generate_synthetic_coco(tmp_path / "synth", 8, 4, seed=1)
    cfg = config_from_dict({
        "model": {"name": "lgm_pose"},
        "data": {"input_size": list(SMALL), "batch_size": 4, "val_batch_size": 8, "workers": 0,
                 "train": {"type": "coco", "ann_file": str(paths["train_ann"]), "img_dir": str(paths["train_images"])},
                 "val": {"type": "coco", "ann_file": str(paths["val_ann"]), "img_dir": str(paths["val_images"])}},
        "train": {"epochs": 1, "lr": 1e-3, "optimizer": "adam", "max_iters_per_epoch": 3, "val_interval": 1,
                  "deterministic": True},
    })
    trainer = Trainer(cfg, tmp_path / "run")
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    summary = trainer.fit()
    assert "AP" in summary["metrics"]
    after = trainer.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())
    assert (tmp_path / "run" / "last.pth").is_file()
