"""RepNet (RepVGG backbone + multi-level fusion + RLE head): structure, re-parameterisation,
paper figures, training step and ONNX export."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from slimpose.deploy.complexity import count_macs, count_params
from slimpose.models.reparam import reparameterize_model
from slimpose.models import build_model, get_model_entry
from slimpose.models.repnet import RepVGGBlock

INPUT = (256, 192)


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, and a head whose outputs are O(1),
    so that a wrong fold or a dropped branch shows up in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.2, 0.2, generator=g)
        model.head.weight.normal_(0.0, 0.1, generator=g)
    return model.eval()


@pytest.fixture(scope="module", params=["repnet_a", "repnet_b"])
def trained_and_deployed(request):
    torch.manual_seed(0)
    model = _randomize(build_model(request.param))
    return request.param, model, reparameterize_model(model)


def test_output_contract():
    torch.manual_seed(0)
    model = build_model("repnet_a").eval()
    assert model.output_kind == "coordinate"
    with torch.no_grad():
        out = model(torch.randn(2, 3, *INPUT))
    assert out.shape == (2, 17, 4)
    sigma = out[..., 2:]
    assert torch.all((sigma > 0) & (sigma < 1))
    # the head starts near the crop centre with sigma near 0.5
    assert (out[..., :2] - 0.5).abs().mean() < 0.2
    assert (sigma - 0.5).abs().mean() < 0.2
    # the RLE flow is a training-only part of the model; the deployed form has none
    assert model.flow is not None and any(n.startswith("flow.") for n, _ in model.named_parameters())
    assert not any("flow" in name for name, _ in reparameterize_model(model).named_modules())


def test_reparameterized_equals_training_form(trained_and_deployed):
    name, model, deployed = trained_and_deployed
    x = torch.randn(1, 3, *INPUT, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y_train, y_deploy = model(x), deployed(x)
        feats_train, feats_deploy = model.backbone(x), deployed.backbone(x)
    assert y_train.abs().max() > 0.5  # the comparison is not between near-constant outputs
    # Two different float32 graphs through a 22-block backbone: 1e-4 of the values' scale
    # (measured ~3 ulps on the outputs, ~14 on the deepest features); a wrong fold or a
    # dropped branch is off by ~1e-1.
    diff = (y_train - y_deploy).abs().max().item()
    assert diff < 1e-4 * max(1.0, y_train.abs().max().item()), f"{name}: max abs diff {diff}"
    for a, b in zip(feats_train, feats_deploy):
        assert ((a - b).abs().max() / a.abs().max()).item() < 1e-4


def test_deployed_blocks_are_single_convs(trained_and_deployed):
    _, model, deployed = trained_and_deployed
    n_train = sum(isinstance(m, RepVGGBlock) for m in model.modules())
    blocks = [m for m in deployed.modules() if isinstance(m, RepVGGBlock)]
    assert len(blocks) == n_train == 22
    for block in blocks:
        convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
        assert len(convs) == 1
        conv = convs[0]
        assert conv.kernel_size == (3, 3) and conv.bias is not None
        assert not hasattr(block, "rbr_1x1") and not hasattr(block, "rbr_dense")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in deployed.modules())
    # the training form is untouched (reparameterize_model deep-copies)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_block_merge_does_not_depend_on_traversal_order():
    """Merging gives the same conv whether the branches' own BN folds ran first or not."""
    torch.manual_seed(0)
    block = RepVGGBlock(8, 8, 1)
    wrapper = nn.Sequential(block)
    wrapper.head = nn.Linear(1, 1)  # _randomize needs a head
    _randomize(wrapper)
    x = torch.randn(2, 8, 10, 10)
    with torch.no_grad():
        ref = block(x)
        folded_first = RepVGGBlock(8, 8, 1)
        folded_first.load_state_dict(block.state_dict())
        folded_first.eval()
        folded_first.rbr_dense.reparameterize()
        folded_first.rbr_1x1.reparameterize()
        folded_first.reparameterize()
        block.reparameterize()
        tol = 1e-5 * max(1.0, ref.abs().max().item())  # one fused conv vs three branches: ~80 ulps
        assert (block(x) - ref).abs().max() < tol
        assert (folded_first(x) - ref).abs().max() < tol


def test_paper_figures(trained_and_deployed):
    name, model, deployed = trained_and_deployed
    entry = get_model_entry(name)
    assert entry.output_kind == "coordinate" and entry.tolerance == 0.03
    forms = {fig.form: fig for fig in entry.paper}
    assert set(forms) == {"train", "deploy"}
    for form, m in (("train", model), ("deploy", deployed)):
        fig = forms[form]
        params_m = count_params(m) / 1e6
        gmacs = count_macs(m, fig.input_size) / 1e9
        assert abs(params_m - fig.params_m) / fig.params_m <= entry.tolerance, (name, form, params_m)
        assert abs(gmacs - fig.gmacs) / fig.gmacs <= entry.tolerance, (name, form, gmacs)


def test_forward_backward():
    torch.manual_seed(0)
    model = build_model("repnet_a").train()
    out = model(torch.randn(2, 3, 128, 96))
    assert out.shape == (2, 17, 4)
    out.sum().backward()
    grads = [p.grad for n, p in model.named_parameters() if not n.startswith("flow.")]  # the loss trains the flow
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.backbone.stage0.rbr_dense.conv.weight.grad.abs().sum() > 0


def test_position_outputs_average_to_the_output():
    """Asked for them, training runs the head at every position of the fused map; their
    mean is the pooled regression's output, so the dense term and RLE see the same model."""
    torch.manual_seed(0)
    plain = _randomize(build_model("repnet_a", num_joints=14)).train()
    x = torch.randn(2, 3, 128, 96)
    assert isinstance(plain(x), torch.Tensor)  # not made unless asked
    model = build_model("repnet_a", num_joints=14, position_outputs=True)
    model.load_state_dict(plain.state_dict())
    outputs = model.train()(x)
    dense, out = outputs["positions"], outputs["joints"]
    assert dense.shape == (2, 8, 6, 14, 4) and outputs["heatmaps"] is None
    assert torch.allclose(dense.mean((1, 2))[..., :2], out[..., :2], atol=1e-5)
    assert torch.allclose(dense.mean((1, 2))[..., 2:].sigmoid(), out[..., 2:], atol=1e-5)
    with torch.no_grad():
        assert isinstance(model.eval()(x), torch.Tensor)  # inference pools first and returns the joints


def test_auxiliary_heatmaps_are_training_only():
    """The training-only decoder maps the fused map to stride-4 heatmaps in training, is
    left out of the counted network and dropped on deploy, and never changes the output."""
    torch.manual_seed(0)
    model = build_model("repnet_a", num_joints=14, auxiliary_heatmaps=True, init_std=0.001)
    x = torch.randn(2, 3, 128, 96)
    assert model.train()(x)["heatmaps"].shape == (2, 14, 32, 24)
    plain = build_model("repnet_a", num_joints=14)
    plain.load_state_dict(model.state_dict(), strict=False)  # after the BN statistics moved
    with torch.no_grad():
        out = model.eval()(x)
        assert isinstance(out, torch.Tensor)  # inference runs no decoder
        assert torch.allclose(out, plain.eval()(x))
    assert count_params(model) == count_params(plain)
    assert count_macs(model, (128, 96)) == count_macs(plain, (128, 96))
    deployed = reparameterize_model(model)
    assert deployed.heatmap_decoder is None
    assert not any(k.startswith("heatmap_decoder.") for k in deployed.state_dict())


def test_init_std_draws_the_backbone_and_fusion_small():
    torch.manual_seed(0)
    small = build_model("repnet_a", init_std=0.001)
    default = build_model("repnet_a")
    for name in ("backbone.stage3.5.rbr_dense.conv.weight", "neck.up32.conv.weight"):
        w_small = small.state_dict()[name]
        assert w_small.std() == pytest.approx(0.001, rel=0.1)
        assert default.state_dict()[name].std() > 5 * w_small.std()


def test_deploy_flag_builds_deployed_layout():
    torch.manual_seed(0)
    deployed = reparameterize_model(_randomize(build_model("repnet_a")))
    fresh = build_model("repnet_a", deploy=True)
    fresh.load_state_dict(deployed.state_dict())  # strict: same layout
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad():
        assert torch.allclose(fresh.eval()(x), deployed(x), atol=1e-6)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_export_matches_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    deployed = reparameterize_model(_randomize(build_model("repnet_a")))
    x = torch.randn(1, 3, *INPUT)
    path = tmp_path / "repnet_a.onnx"
    torch.onnx.export(deployed, (x,), str(path), opset_version=17, dynamo=False,
                      input_names=["input"], output_names=["output"])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"input": x.numpy()})
    with torch.no_grad():
        ref = deployed(x).numpy()
    assert out.shape == (1, 17, 4)
    assert abs(out - ref).max() < 1e-4 * max(1.0, abs(ref).max())  # ORT vs PyTorch kernels: relative


def _blob_crops(n: int, gen: torch.Generator, h: int = 64, w: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy crops whose only content is a bright rectangle at a random place; its centre
    is the one joint (normalised x, y)."""
    centre = torch.rand(n, 1, 2, generator=gen) * 0.7 + 0.15
    ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
    inside = ((xs - centre[..., 0, None, None]).abs() < 0.08) & ((ys - centre[..., 1, None, None]).abs() < 0.06)
    crops = inside.float() + 0.1 * torch.randn(n, 1, h, w, generator=gen)
    return crops.expand(n, 3, h, w).contiguous(), centre


def test_repnet_a_leaves_the_mean_pose_with_the_decomposed_regression():
    """RepNet-A as projects/repnet_lspet/configs/repnet_a_lspet-decomposed_128x96.yaml trains it (LPN's init,
    AdamW lr 2e-3, RLE + the dense term, weight 100) must learn where a thing lies through
    its global-pooled readout: on held-out crops it starts at the mean position and after
    100 steps of 16 crops its error is a fraction of the mean position's."""
    from slimpose.heads import build_head

    torch.manual_seed(0)
    loss_fn = build_head("pooled_rle", {"dense_weight": 100.0})
    model = build_model("repnet_a", num_joints=1, input_size=(64, 48), init_std=0.001, **loss_fn.model_kwargs())
    loss_fn.bind(model)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    val_crops, val_centres = _blob_crops(64, torch.Generator().manual_seed(1))
    mean_error = float((val_centres - val_centres.mean(0)).abs().sum(-1).mean())

    def relative_error() -> float:
        model.eval()
        with torch.no_grad():
            pred = model(val_crops)[..., :2]
        return float((pred - val_centres).abs().sum(-1).mean()) / mean_error

    start = relative_error()
    assert start > 0.9, f"not at the mean position before training: {start:.3f}"
    gen = torch.Generator().manual_seed(0)
    for _ in range(100):
        crops, centres = _blob_crops(16, gen)
        model.train()
        loss = loss_fn(model(crops), centres, torch.ones(16, 1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    end = relative_error()
    assert end < 0.4, f"error {end:.3f} of the mean position's after 100 steps"
