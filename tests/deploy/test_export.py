"""ONNX export of every registered model, the torch-free runtime, INT8 quantisation,
the benchmark and the deploy CLI.

Each model is built and exported once (module fixture) at a small input divisible by 64
(RepNet/LPN strides, 2x2 patches at stride 32), with weights and BN statistics made
non-trivial so that BN folding and branch merging are really exercised.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn

from slimpose.cli import main
from slimpose.data.transforms import BOX_PADDING
from slimpose.deploy.export import export_onnx
from slimpose.deploy.runtime import OnnxPoseEstimator, crops_from_images, read_onnx_metadata
from slimpose.keypoints import get_layout
from slimpose.models.registry import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, build_model, get_model_entry, list_models

SIZE = (64, 64)
MODELS = list_models()
COCO = get_layout("coco")
REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _synthetic_image(seed: int, h: int = 240, w: int = 320) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (7, 7), 3)
    for _ in range(6):
        c = tuple(int(v) for v in rng.integers(0, 255, 3))
        p = rng.integers(0, [w, h], size=(2, 2))
        cv2.line(img, tuple(int(v) for v in p[0]), tuple(int(v) for v in p[1]), c, 6)
        cv2.circle(img, tuple(int(v) for v in p[0]), int(rng.integers(5, 20)), c, -1)
    return img


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    for i in range(10):
        cv2.imwrite(str(d / f"img{i:02d}.png"), _synthetic_image(i, 200 + 10 * i, 160 + 12 * i))
    return d


def _make_nontrivial(model: nn.Module, seed: int = 0) -> nn.Module:
    """Default PyTorch init everywhere (so last layers and GC convs are not ~0), random
    BN affine terms, BN statistics calibrated on a random batch so that activations stay
    O(1) through deep stacks; the model is returned in eval mode."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                m.reset_parameters()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the calibration pass
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
        model.train()
        model(torch.randn(2, 3, *SIZE))
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                # dead or near-constant channels would otherwise be scaled up by 1/sqrt(eps)
                m.running_var.clamp_(min=0.1 * float(m.running_var.mean()) + 1e-3)
    return model.eval()


class _Exports(dict):
    """Each model exported once, when a test first asks for it: one model that fails to
    export fails its own tests, not the module's."""

    def __init__(self, out_dir, real_crops):
        super().__init__()
        self.out_dir, self.real = out_dir, real_crops

    def __missing__(self, name):
        model = _make_nontrivial(build_model(name, num_joints=17, input_size=SIZE))
        res = export_onnx(model, self.out_dir / f"{name}.onnx", SIZE, COCO, real_crops=self.real)
        with torch.inference_mode():
            train_form = model(torch.from_numpy(self.real)).numpy()
        self[name] = {"result": res, "train_form_out": train_form, "crops": self.real}
        return self[name]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, image_dir):
    real = crops_from_images(sorted(image_dir.iterdir())[:2], SIZE, IMAGENET_MEAN_RGB, IMAGENET_STD_RGB)
    return _Exports(tmp_path_factory.mktemp("onnx"), real)


def _tol(output_scale: float) -> float:
    """1e-4 absolute for outputs up to 1, 1e-3 of the output range beyond that."""
    return max(1e-4, 1e-3 * float(output_scale))


@pytest.mark.parametrize("name", MODELS)
def test_export_matches_torch_and_carries_metadata(exported, name):
    entry = get_model_entry(name)
    r = exported[name]["result"]
    assert r["max_abs_output_real"] > 1e-2, "outputs are ~0: the check would be vacuous"
    # float32 rounding differs between ORT and PyTorch kernels and grows with depth and
    # output scale (deep LPNs with random O(1) weights reach ~3e-4 relative); a wrong BN
    # fold or weight layout gives errors of order 1e-1 relative.
    assert r["max_abs_diff_random"] < _tol(r["max_abs_output_random"]), r
    assert r["max_abs_diff_real"] < _tol(r["max_abs_output_real"]), r
    est = OnnxPoseEstimator(r["path"], threads=1)
    meta = est.metadata
    assert meta.to_fields() == read_onnx_metadata(r["path"]).to_fields() == r["metadata"].to_fields()
    assert meta.model_name == name and meta.output_kind == entry.output_kind
    assert meta.input_size == SIZE and meta.color_order == entry.info.color_order
    assert meta.mean == entry.info.mean and meta.std == entry.info.std and meta.box_padding == BOX_PADDING
    assert meta.layout == COCO and list(meta.flip_index) == COCO.flip_index
    assert meta.slimpose_version and meta.weights is None
    fields = meta.to_fields()
    if entry.output_kind == "heatmap":
        assert fields["heatmap_stride"] == [4.0, 4.0] and fields["sigma"] == 2.0
        assert fields["decode"] == entry.info.decode
    # The exported (re-parameterised) model also agrees with the training form it came from.
    onnx_out = est.forward(exported[name]["crops"])
    ref = exported[name]["train_form_out"]
    assert np.abs(onnx_out - ref).max() < _tol(np.abs(ref).max())


def test_runtime_preprocessing_matches_training_transforms(exported):
    from slimpose.data.transforms import box_to_center_scale, normalize_crop
    from slimpose.geometry import get_affine_transform

    est = OnnxPoseEstimator(exported["tinypose"]["result"]["path"])
    img = _synthetic_image(3)
    box = [30.0, 20.0, 90.0, 150.0]
    x, centers, scales = est.preprocess(img, [box])
    c, s = box_to_center_scale(box, SIZE[1] / SIZE[0])
    ref = normalize_crop(cv2.warpAffine(img, get_affine_transform(c, s, 0.0, (SIZE[1], SIZE[0])), (SIZE[1], SIZE[0]),
                                        flags=cv2.INTER_LINEAR))
    np.testing.assert_allclose(centers[0], c)
    np.testing.assert_allclose(scales[0], s)
    np.testing.assert_allclose(x[0], ref, atol=1e-5)


def _kind_examples(exported):
    seen = {}
    for name in MODELS:
        seen.setdefault(get_model_entry(name).output_kind, name)
    return [exported[n]["result"]["path"] for n in seen.values()]


def test_runtime_end_to_end_is_torch_free(exported, tmp_path):
    img_path = tmp_path / "person.png"
    cv2.imwrite(str(img_path), _synthetic_image(7))
    code = textwrap.dedent(f"""
        import json, sys
        import cv2, numpy as np
        from slimpose.deploy.runtime import OnnxPoseEstimator
        img = cv2.imread({str(img_path)!r})
        out = []
        for path in {_kind_examples(exported)!r}:
            est = OnnxPoseEstimator(path, threads=1)
            boxes = np.array([[20, 10, 100, 180], [150, 40, 80, 120]], float)
            k, s = est(img, boxes)
            kf, sf = est(img, boxes, flip=True)
            kw, sw = est(img)  # whole image
            e0, _ = est(img, np.zeros((0, 4)))
            assert k.shape == kf.shape == (2, 17, 2) and s.shape == (2, 17), (k.shape, s.shape)
            assert kw.shape == (1, 17, 2) and e0.shape == (0, 17, 2)
            assert np.isfinite(k).all() and np.isfinite(kf).all() and np.isfinite(s).all()
            # heatmap keypoints land inside the crop: the padded box around each person box
            for b, kk in zip(boxes, k if est.output_kind == "heatmap" else []):
                cx, cy = b[0] + b[2] / 2, b[1] + b[3] / 2
                half = 1.25 * max(b[2], b[3]) / 2 + 1
                assert (np.abs(kk[:, 0] - cx) <= half).all() and (np.abs(kk[:, 1] - cy) <= half).all()
            out.append(est.output_kind)
        assert 'torch' not in sys.modules, 'runtime imported torch'
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])


def test_dynamic_batch_and_static_batch_runtime(exported, tmp_path):
    model = _make_nontrivial(build_model("tinypose", input_size=SIZE), seed=1)
    crops = exported["tinypose"]["crops"]
    dyn = export_onnx(model, tmp_path / "dyn.onnx", SIZE, COCO, dynamic_batch=True, real_crops=crops)
    assert dyn["max_abs_diff_real"] < _tol(dyn["max_abs_output_real"])
    assert read_onnx_metadata(dyn["path"]).dynamic_batch is True
    est = OnnxPoseEstimator(dyn["path"])
    assert est.static_batch is None
    x = np.concatenate([crops, crops[::-1], crops[:1]])
    together = est.forward(x)
    one_by_one = np.concatenate([est.forward(x[i:i + 1]) for i in range(len(x))])
    assert together.shape[0] == 5
    # batched and one-by-one may take different ORT kernels: 1e-4 of the output scale
    np.testing.assert_allclose(together, one_by_one, atol=1e-4 * max(1.0, np.abs(one_by_one).max()))
    static = OnnxPoseEstimator(exported["tinypose"]["result"]["path"])
    assert static.static_batch == 1 and static.forward(x).shape[0] == 5


def test_fp16_weights_halve_the_file_and_keep_float32_arithmetic(exported, tmp_path):
    import onnx

    model = _make_nontrivial(build_model("tinypose", input_size=SIZE), seed=2)
    crops = exported["tinypose"]["crops"]
    full = export_onnx(model, tmp_path / "full.onnx", SIZE, COCO, real_crops=crops)
    half = export_onnx(model, tmp_path / "half.onnx", SIZE, COCO, real_crops=crops, fp16_weights=True)
    # checked against the same weights rounded to float16 (what the file holds): kernel-level agreement
    assert half["max_abs_diff_real"] < _tol(half["max_abs_output_real"])
    full_size, half_size = (Path(r["path"]).stat().st_size for r in (full, half))
    assert 0.45 < half_size / full_size < 0.6
    graph = onnx.load(half["path"]).graph
    convs = {init.name: init.data_type for init in graph.initializer if len(init.dims) == 4}
    assert set(convs.values()) == {onnx.TensorProto.FLOAT16}
    casts = [n for n in graph.node if n.op_type == "Cast"]
    assert {n.input[0] for n in casts} >= set(convs) and casts == list(graph.node)[:len(casts)]
    # the rounding is all that differs from the float32 file (a shallow net: deep random-weight
    # nets amplify any perturbation; the shipped LPN-50 files score the same PCK either way)
    out_full = OnnxPoseEstimator(full["path"]).forward(crops)
    out_half = OnnxPoseEstimator(half["path"]).forward(crops)
    assert 0 < np.abs(out_half - out_full).max() < 1e-2 * np.abs(out_full).max()
    # such a file quantises as a float32 one does: every convolution takes int8 weights
    from slimpose.deploy.quantize import quantize_int8

    quantize_int8(half["path"], tmp_path / "half_int8.onnx", crops)
    int8_graph = onnx.load(str(tmp_path / "half_int8.onnx")).graph
    int8_weights = {init.name for init in int8_graph.initializer if init.data_type == onnx.TensorProto.INT8}
    producers = {out: node for node in int8_graph.node for out in node.output}
    int8_convs = [n for n in int8_graph.node if n.op_type in ("Conv", "ConvTranspose")]
    assert len(int8_convs) >= 10
    for conv in int8_convs:
        dequantize = producers[conv.input[1]]
        assert dequantize.op_type == "DequantizeLinear" and dequantize.input[0] in int8_weights, conv.name


def test_store_weights_fp16_converts_only_what_float16_holds_exactly():
    import onnx
    from onnx import helper, numpy_helper

    from slimpose.deploy.export import store_weights_fp16

    exact = np.arange(32, dtype=np.float32).reshape(32, 1) / 4  # quarters: exact in float16
    inexact = np.full((32, 1), 0.1, np.float32)
    small = np.ones((2, 1), np.float32)
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["ab"]), helper.make_node("Add", ["ab", "c"], ["y"])], "g",
        [], [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [32, 1])],
        [numpy_helper.from_array(exact, "a"), numpy_helper.from_array(inexact, "b"),
         numpy_helper.from_array(np.vstack([small] * 16), "c")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert store_weights_fp16(proto) == 2  # "a" and "c"; "b" stays float32
    onnx.checker.check_model(proto)
    types = {init.name: init.data_type for init in proto.graph.initializer}
    assert types == {"b": onnx.TensorProto.FLOAT, "a__fp16": onnx.TensorProto.FLOAT16,
                     "c__fp16": onnx.TensorProto.FLOAT16}
    import onnxruntime as ort

    y = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {})[0]
    np.testing.assert_array_equal(y, exact + inexact + 1)


def test_quantize_int8_close_to_float(exported, image_dir, tmp_path):
    from slimpose.deploy.quantize import compare_int8, quantize_int8

    src = exported["tinypose"]["result"]["path"]
    crops = crops_from_images(sorted(image_dir.iterdir()), SIZE, IMAGENET_MEAN_RGB, IMAGENET_STD_RGB)
    out = tmp_path / "tiny_int8.onnx"
    info = quantize_int8(src, out, crops[:6])
    assert info["size_int8_mb"] < info["size_float_mb"]
    meta = read_onnx_metadata(out)
    assert meta.model_name == "tinypose" and meta.extra["quantization"]["format"] == "QDQ"
    assert meta.layout == COCO
    res = compare_int8(src, out, crops[6:], threads=1, warmup=1, iters=3, rounds=1)
    for key in ("mean_kpt_err_px", "pck@0.05", "float_ms", "int8_ms", "speedup"):
        assert np.isfinite(res[key]), res
    # A random-weight net has flat, noisy heatmaps, so keypoints are a weak test here (the
    # report measures a trained model on real crops); the outputs themselves must agree.
    assert res["output_correlation"] > 0.9, res
    assert res["median_kpt_err_px"] <= 4.0, res  # one heatmap pixel
    k, s = OnnxPoseEstimator(out)(_synthetic_image(5), [[10, 10, 100, 150]])
    assert k.shape == (1, 17, 2) and np.isfinite(k).all()


def test_float_nodes_are_the_softmax_modules_and_named_substrings():
    import onnx
    from onnx import helper

    from slimpose.deploy.quantize import float_node_names
    from slimpose.errors import SlimposeError

    names = ["/stem/conv/Conv", "/layer1/0/gc/conv_mask/Conv", "/layer1/0/gc/Softmax", "/layer1/0/gc/MatMul",
             "/layer1/0/conv2/Conv", "/final/Conv"]
    graph = helper.make_graph([helper.make_node(n.rsplit("/", 1)[1].split("_")[0], [], [], name=n) for n in names],
                              "g", [], [])
    assert isinstance(graph, onnx.GraphProto)
    gc = names[1:4]
    assert float_node_names(graph) == gc
    assert float_node_names(graph, float_attention=False) == []
    assert float_node_names(graph, ("/stem/",)) == [names[0], *gc]
    with pytest.raises(SlimposeError, match="--keep-float '/stme/'"):
        float_node_names(graph, ("/stme/",))


def test_quantize_keeps_lpn_attention_in_float(exported, image_dir, tmp_path):
    import onnx

    from slimpose.deploy.quantize import quantize_int8

    src = exported["lpn_50"]["result"]["path"]
    crops = crops_from_images(sorted(image_dir.iterdir())[:4], SIZE, IMAGENET_MEAN_RGB, IMAGENET_STD_RGB)
    out = tmp_path / "lpn_int8.onnx"
    info = quantize_int8(src, out, crops, keep_float=("/stem/stem.0/",))
    nodes = onnx.load(str(out)).graph.node
    producer = {o: n for n in nodes for o in n.output}

    def quantized_input(name: str) -> bool:  # an INT8 conv's weights come dequantized, a float one's as they are
        weight = next(n for n in nodes if n.name == name).input[1]
        return weight in producer and producer[weight].op_type == "DequantizeLinear"

    gc_convs = [n.name for n in nodes if n.op_type == "Conv" and "/gc/" in n.name]
    assert gc_convs and not any(quantized_input(n) for n in gc_convs)
    assert not quantized_input("/stem/stem.0/conv/Conv")
    assert quantized_input("/final/Conv")
    assert info["float_nodes"] > len(gc_convs) and info["keep_float"] == ["/stem/stem.0/"]
    assert read_onnx_metadata(out).extra["quantization"]["float_attention"] is True


def test_benchmark_rows():
    from slimpose.deploy.benchmark import benchmark

    rows = benchmark(["tinypose"], backends=("torch", "onnxruntime"), threads=1, batch=2, input_size=(64, 48),
                     warmup=1, iters=3, rounds=1)
    assert [r["backend"] for r in rows] == ["torch", "onnxruntime"]
    for r in rows:
        assert {"model", "backend", "batch", "threads", "median_ms", "p90_ms", "throughput", "input", "cpu"} <= set(r)
        assert r["cpu"] and isinstance(r["cpu"], str)  # speeds compare only on one machine: say which
        assert r["batch"] == 2 and r["input"] == "64x48" and r["median_ms"] > 0
        assert r["throughput"] == pytest.approx(2e3 / r["median_ms"])
    if not torch.cuda.is_available():
        from slimpose.errors import SlimposeError

        with pytest.raises(SlimposeError, match="CUDA"):
            benchmark(["tinypose"], backends=("torch-cuda",), iters=1, warmup=0)


def test_benchmark_compares_input_sizes_in_one_run():
    from slimpose.deploy.benchmark import benchmark, model_spec

    assert model_spec("lpn_50@128x96") == ("lpn_50", (128, 96))
    assert model_spec("lpn_50", (64, 48)) == ("lpn_50", (64, 48))
    from slimpose.errors import SlimposeError

    with pytest.raises(SlimposeError, match="after @ must be HxW"):
        model_spec("lpn_50@big")
    rows = benchmark(["tinypose@64x48", "tinypose@32x32"], backends=("onnxruntime",), threads=1, warmup=0,
                     iters=2, rounds=1)
    assert [(r["model"], r["input"]) for r in rows] == [("tinypose", "64x48"), ("tinypose", "32x32")]
    from slimpose.deploy.benchmark import format_bench_table

    table = format_bench_table(rows).splitlines()
    assert table[0].split()[-3:] == ["x", "row", "1"]
    ratio = float(table[3].split()[-1])
    assert ratio == pytest.approx(rows[1]["median_ms"] / rows[0]["median_ms"], abs=1e-3)
    assert table[2].split()[-1] == "1.000"


def test_benchmark_times_onnx_files_beside_registered_models(tmp_path):
    from slimpose.deploy.benchmark import benchmark
    from slimpose.errors import SlimposeError

    path = tmp_path / "tiny.onnx"
    export_onnx(build_model("tinypose").eval(), path, (64, 48), get_layout("coco"), check=False)
    rows = benchmark([str(path), "tinypose@32x32"], backends=("torch", "onnxruntime"), threads=1, warmup=0, iters=2,
                     rounds=1)
    assert [(r["model"], r["input"], r["backend"]) for r in rows] == [
        (str(path), "64x48", "onnxruntime"), ("tinypose", "32x32", "torch"), ("tinypose", "32x32", "onnxruntime")]
    with pytest.raises(SlimposeError, match="onnxruntime backends only"):
        benchmark([str(path)], backends=("torch",), iters=1, warmup=0)
    with pytest.raises(SlimposeError, match="not found"):
        benchmark([str(tmp_path / "missing.onnx")], iters=1, warmup=0)


def test_bench_profile_splits_ort_time_per_op_type(capsys):
    assert main(["bench", "tinypose@64x48", "--backend", "torch,onnxruntime", "--threads", "1", "--warmup", "1",
                 "--iters", "2", "--profile"]) == 0
    out = capsys.readouterr().out
    assert "kernel time per op type" in out and "Conv" in out

    from slimpose.deploy.benchmark import benchmark

    torch_row, ort_row = benchmark(["tinypose@64x48"], threads=1, warmup=0, iters=2, rounds=1, profile=True)
    assert "profile" not in torch_row
    profile = ort_row["profile"]
    assert sum(r["share"] for r in profile) == pytest.approx(1.0)
    assert [r["ms_per_run"] for r in profile] == sorted((r["ms_per_run"] for r in profile), reverse=True)
    # tinypose is convolutions with ReLU and a final 1x1 conv: ORT's kernels are conv kinds
    assert any("Conv" in r["op_type"] for r in profile) and all(r["nodes"] >= 1 for r in profile)


def test_cli_complexity_export_quantize(tmp_path, image_dir, capsys):
    js = tmp_path / "c.json"
    assert main(["complexity", "tinypose", "--input", "128x96", "--json", str(js)]) == 0
    rows = json.loads(js.read_text())
    assert rows[0]["model"] == "tinypose" and rows[0]["input"] == "128x96"
    assert {"model", "input", "params", "params_deploy", "gmacs", "paper_params", "paper_gmacs"} <= set(rows[0])
    with pytest.raises(SystemExit):
        main(["complexity", "tinypose", "--input", "128by96"])
    assert "HxW" in capsys.readouterr().err

    # a checkpoint with metadata: export takes input size and layout from it
    from slimpose.engine.checkpoint import save_checkpoint

    model = build_model("tinypose", num_joints=14, input_size=(128, 96))
    ckpt = tmp_path / "tiny.pth"
    save_checkpoint({"model": model.state_dict(), "meta": {"model_name": "tinypose", "input_size": [128, 96],
                                                          "layout": get_layout("lsp").to_dict()}}, ckpt)
    onnx_path = tmp_path / "tiny.onnx"
    assert main(["export", "tinypose", "--checkpoint", str(ckpt), "--out", str(onnx_path),
                 "--check-images", str(image_dir)]) == 0
    printed = capsys.readouterr().out
    assert "max abs diff" in printed and "real crops" in printed
    meta = read_onnx_metadata(onnx_path)
    assert meta.input_size == (128, 96) and meta.layout.name == "lsp" and meta.num_keypoints == 14
    half_path = tmp_path / "tiny_fp16.onnx"
    assert main(["export", "tinypose", "--checkpoint", str(ckpt), "--out", str(half_path), "--fp16-weights"]) == 0
    assert "max abs diff" in capsys.readouterr().out
    assert half_path.stat().st_size < 0.6 * onnx_path.stat().st_size
    # a checkpoint that does not fit the model is a clear error, not a traceback
    assert main(["export", "tinypose", "--checkpoint", str(ckpt), "--layout", "coco", "--out",
                 str(tmp_path / "bad.onnx")]) == 2
    assert "does not fit" in capsys.readouterr().err

    q = tmp_path / "tiny_int8.onnx"
    assert main(["quantize", str(onnx_path), "--out", str(q), "--calib-images", str(image_dir),
                 "--num-calib", "6", "--num-eval", "4", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "speed-up" in printed and "mean error" in printed and q.is_file()
