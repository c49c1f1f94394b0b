"""INT8 quantisation: settings that depend on the CPU, and the graph ONNX Runtime runs."""

from __future__ import annotations

import pytest


def test_int8_weights_use_7_bits_on_x86_without_vnni(tmp_path):
    from slimpose.deploy.quantize import cpu_lacks_vnni

    def cpu(flags):
        path = tmp_path / f"cpuinfo_{len(flags)}"
        path.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        return path

    assert cpu_lacks_vnni(cpu("fpu sse2 avx avx2 fma")) is True  # AVX2 only: U8S8 sums saturate
    assert cpu_lacks_vnni(cpu("fpu avx2 avx512f avx512_vnni")) is False
    assert cpu_lacks_vnni(cpu("fpu avx2 avx_vnni")) is False
    assert cpu_lacks_vnni(cpu("fp asimd")) is False  # not x86
    assert cpu_lacks_vnni(tmp_path / "absent") is False



@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's TorchScript exporter, as slimpose's export
def test_lpn_int8_graph_transposes_only_around_its_float_layers(tmp_path):
    """LPN's GC blocks are written channels-last so that their reshapes, matmul and
    LayerNorm read the NHWC tensors ONNX Runtime's INT8 convs produce. After slimpose's
    export and INT8 quantisation and ORT's full optimisation, the only transposes left are
    the graph's input and output and those of the upsampling head (GCNet's channels-first
    formula added six per block: 102 in LPN-50)."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    from slimpose.deploy.export import export_onnx
    from slimpose.deploy.quantize import quantize_int8
    from slimpose.keypoints import get_layout
    from slimpose.models.registry import build_model

    layout = get_layout("lsp")
    torch.manual_seed(0)
    model = build_model("lpn_50", num_joints=layout.num_keypoints).eval()
    export_onnx(model, tmp_path / "float.onnx", (64, 48), layout, model_name="lpn_50")
    crops = np.random.default_rng(0).normal(size=(4, 3, 64, 48)).astype(np.float32)
    quantize_int8(tmp_path / "float.onnx", tmp_path / "int8.onnx", crops, float_attention=False)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(tmp_path / "int8.onnx"), opts, providers=["CPUExecutionProvider"])
    ops = [node.op_type for node in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert ops.count("QLinearMatMul") == 16 and ops.count("ConvTranspose") == 1  # 16 GC blocks, quantised
    # input and output, the float deconvolution's pair, and 5 around the phase-split
    # upsampling's stack, reshape and pixel shuffle, which run channels-first
    assert ops.count("Transpose") == 2 + 2 + 5, ops
