"""LPN: build, shapes, gradients, paper complexity, GC identity at init, BN folding, ONNX."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from slimpose.deploy.complexity import count_macs, count_params
from slimpose.models.reparam import reparameterize_model
from slimpose.models.lpn import GlobalContextBlock
from slimpose.models.registry import build_model, get_model_entry, list_models

VARIANTS = ["lpn_50", "lpn_101", "lpn_152", "lpn_50_nogc", "lpn_101_nogc", "lpn_152_nogc"]
SMALL = (64, 48)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: build_model(name) for name in VARIANTS}


def _randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """O(1)-scale weights, random BN affine/statistics and non-zero GC output convs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                fan_in = m.weight[0].numel() if isinstance(m, nn.Conv2d) else m.weight.shape[0] // m.groups * 16
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / fan_in ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
    return model


def test_all_variants_registered():
    names = set(list_models())
    for name in VARIANTS:
        assert name in names
        assert get_model_entry(name).output_kind == "heatmap"
        assert get_model_entry(name).paper


@pytest.mark.parametrize("name", VARIANTS)
def test_forward_shape(models, name):
    model = models[name]
    assert model.output_kind == "heatmap" and model.num_joints == 17
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *SMALL))
    assert out.shape == (2, 17, SMALL[0] // 4, SMALL[1] // 4)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["lpn_50", "lpn_50_nogc"])
def test_backward(name):
    torch.manual_seed(0)
    model = build_model(name, num_joints=5).train()
    out = model(torch.randn(2, 3, *SMALL))
    assert out.shape == (2, 5, SMALL[0] // 4, SMALL[1] // 4)
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert model.final.weight.grad.abs().sum() > 0
    # the zero-initialised GC output conv still receives a gradient
    if name == "lpn_50":
        gc = next(m for m in model.modules() if isinstance(m, GlobalContextBlock))
        assert gc.channel_add[-1].bias.grad.abs().sum() > 0


@pytest.mark.parametrize("name", VARIANTS)
def test_paper_complexity(models, name):
    entry = get_model_entry(name)
    for fig in entry.paper:
        if (fig.num_joints, tuple(fig.input_size)) == (17, (256, 192)):
            model = models[name]
        else:
            model = build_model(name, num_joints=fig.num_joints, input_size=fig.input_size)
        params_m = count_params(model) / 1e6
        assert params_m == pytest.approx(fig.params_m, rel=entry.tolerance), (name, fig)
        if fig.gmacs is not None:
            gmacs = count_macs(model, tuple(fig.input_size)) / 1e9
            assert gmacs == pytest.approx(fig.gmacs, rel=entry.tolerance), (name, fig)


def test_gc_block_identity_at_init(models):
    blocks = [m for m in models["lpn_50"].modules() if isinstance(m, GlobalContextBlock)]
    assert len(blocks) == 16  # one per lightweight bottleneck of LPN-50
    assert not any(isinstance(m, GlobalContextBlock) for m in models["lpn_50_nogc"].modules())
    # P = max(C // 16, 16)
    assert [b.channel_add[0].out_channels for b in (blocks[0], blocks[-1])] == [16, 32]
    with torch.no_grad():
        for block in (blocks[0], blocks[-1]):
            last = block.channel_add[-1]
            assert last.weight.abs().sum() == 0 and last.bias.abs().sum() == 0
            x = torch.randn(2, block.conv_mask.in_channels, 8, 6)
            assert torch.equal(block.eval()(x), x)


def _gcnet_reference(block: GlobalContextBlock, x: torch.Tensor) -> torch.Tensor:
    """GCNet's context block as its paper writes it, channels first."""
    mask = block.conv_mask(x).flatten(2).softmax(dim=-1)  # (N, 1, HW)
    context = torch.matmul(x.flatten(2), mask.transpose(1, 2)).unsqueeze(-1)  # (N, C, 1, 1)
    return x + block.channel_add(context)


@pytest.mark.parametrize("channels_last", [False, True])
def test_gc_block_computes_gcnet_formula(channels_last):
    torch.manual_seed(0)
    block = GlobalContextBlock(32).eval()
    for p in block.parameters():
        nn.init.normal_(p, std=0.3)  # every term matters, the LayerNorm's affine included
    x = torch.randn(2, 32, 8, 6)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref, out = _gcnet_reference(block, x), block(x)
    assert (ref - x).abs().max() > 0.1  # the block changes its input: a real comparison
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["lpn_50", "lpn_50_nogc"])
def test_reparameterize_same_output(name):
    torch.manual_seed(0)
    model = _randomise(build_model(name)).eval()
    x = torch.randn(2, 3, *SMALL)
    with torch.no_grad():
        ref = model(x)
        deployed = reparameterize_model(model)
        out = deployed(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in deployed.modules())
    assert ref.abs().max() > 1e-2  # a meaningful comparison, not two near-zero maps
    # float32 rounding of two different graphs (~7 ulps of the output's largest value here):
    # 1e-4 of the output scale; a wrong BN fold or a dropped branch is off by ~1e-1.
    assert (out - ref).abs().max().item() < 1e-4 * max(1.0, ref.abs().max().item())
    assert count_params(deployed) < count_params(model)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_export_matches(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = _randomise(build_model("lpn_50"), seed=1).eval()
    x = torch.randn(1, 3, *SMALL)
    path = tmp_path / "lpn_50.onnx"
    torch.onnx.export(model, (x,), str(path), opset_version=17, dynamo=False,
                      input_names=["input"], output_names=["heatmaps"])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"input": x.numpy()})
    with torch.no_grad():
        ref = model(x).numpy()
    assert out.shape == ref.shape == (1, 17, SMALL[0] // 4, SMALL[1] // 4)
    assert abs(out - ref).max() < 1e-4 * max(1.0, abs(ref).max())  # ORT vs PyTorch kernels: relative


def test_zero_init_residual_grows_lpn_50_into_lpn_101_without_changing_its_output():
    """LPN-101 is LPN-50 with 17 more stage-3 blocks: given LPN-50's weights and
    ``zero_init_residual``, the extra blocks are identities, in training (batch statistics)
    as in evaluation, so fine-tuning starts from LPN-50's output."""
    torch.manual_seed(0)
    small = build_model("lpn_50", num_joints=14)
    for m in small.modules():  # trained-looking BN statistics, not the identity ones
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    deep = build_model("lpn_101", num_joints=14, zero_init_residual=True)
    missing, unexpected = deep.load_state_dict(small.state_dict(), strict=False)
    assert not unexpected
    assert missing and all(k.startswith(tuple(f"layer3.{i}." for i in range(6, 23))) for k in missing)
    plain = build_model("lpn_101", num_joints=14)
    plain.load_state_dict(small.state_dict(), strict=False)
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        for train in (False, True):
            for m in (small, deep, plain):
                m.train(train)
            torch.testing.assert_close(deep(x), small(x), rtol=1e-5, atol=1e-6)
        # without it, batch statistics scale the new blocks' small random output up to unit size
        assert not torch.allclose(plain(x), small(x), atol=1e-3)
