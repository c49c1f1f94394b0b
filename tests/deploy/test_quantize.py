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


def _int8_graph_ops(module, tmp_path) -> list[str]:
    """The operators ONNX Runtime runs for ``module`` after QDQ INT8 quantisation (the
    scheme of :func:`~slimpose.deploy.quantize.quantize_int8`) and its full graph
    optimisation (which moves quantised convs to NHWC)."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    x = torch.randn(1, 3, 16, 12)
    torch.onnx.export(module.eval(), (x,), str(tmp_path / "float.onnx"), input_names=["input"], opset_version=17,
                      dynamo=False)

    class Crops(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input": np.random.default_rng(i).normal(size=(1, 3, 16, 12)).astype(np.float32)}
                                 for i in range(4)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(tmp_path / "float.onnx"), str(tmp_path / "int8.onnx"), Crops(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)  # as slimpose's
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(tmp_path / "int8.onnx"), opts, providers=["CPUExecutionProvider"])
    import onnx

    return [node.op_type for node in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's TorchScript exporter, as slimpose's export
def test_gc_block_adds_no_transposes_to_the_int8_graph(tmp_path):
    """LPN's GC block is written channels-last so that its reshapes, matmul and LayerNorm
    read the NHWC tensors the INT8 convs produce: only the graph's input and output are
    transposed (the channels-first formula added six transposes per block)."""
    import torch
    import torch.nn as nn

    from slimpose.models.lpn import GlobalContextBlock

    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), GlobalContextBlock(32), nn.Conv2d(32, 8, 1))
    ops = _int8_graph_ops(module, tmp_path)
    assert "QLinearMatMul" in ops and "QLinearConv" in ops  # the block was quantised
    assert ops.count("Transpose") == 2, ops
