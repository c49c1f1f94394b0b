"""INT8 static quantisation of an exported ONNX model (ONNX Runtime, QDQ format) and its
comparison with the float model. Torch-free: onnx, onnxruntime and numpy only.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from slimpose.deploy.export import check_onnx_output, set_onnx_metadata
from slimpose.deploy.runtime import OnnxPoseEstimator, make_session, read_onnx_metadata
from slimpose.errors import SlimposeError
from slimpose.io import atomic_path


class _CropReader:
    """``CalibrationDataReader`` over (M, 3, H, W) crops, fed in the model's batch size."""

    def __init__(self, input_name: str, crops: np.ndarray, batch: int | None):
        self.input_name = input_name
        self.crops = np.ascontiguousarray(crops, dtype=np.float32)
        self.batch = batch or 1
        self.pos = 0

    def get_next(self):
        if self.pos >= len(self.crops):
            return None
        chunk = self.crops[self.pos:self.pos + self.batch]
        self.pos += self.batch
        if len(chunk) < self.batch:  # static batch: pad by repeating
            chunk = np.concatenate([chunk, self.crops[: self.batch - len(chunk)]])[: self.batch]
        return {self.input_name: chunk}

    def rewind(self) -> None:
        self.pos = 0


def cpu_lacks_vnni(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """True on an x86 CPU whose flags list no VNNI (AVX512-VNNI or AVX-VNNI)."""
    try:
        flags = next((line for line in Path(cpuinfo).read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return False
    words = set(flags.split(":", 1)[-1].split())
    return "avx2" in words and not words & {"avx512_vnni", "avx_vnni"}


def attention_nodes(graph) -> list[str]:
    """Names of the nodes of every module that computes a Softmax (the module is the
    Softmax node's name up to its last ``/``, as torch's exporter writes it), e.g. LPN's
    GC blocks: a 1x1 conv to spatial logits, the softmax over positions, the weighted
    sum and two convs on a 1x1 map. With 8-bit logits and context the attention loses
    its range: on the shipped LPN-50 model, float GC blocks win back 1.6 of the 2.3 PCK
    that full INT8 loses, for about 9% more latency."""
    prefixes = {n.name.rsplit("/", 1)[0] + "/" for n in graph.node if n.op_type == "Softmax" and "/" in n.name}
    return [n.name for n in graph.node if any(n.name.startswith(p) for p in prefixes)]


def float_node_names(graph, keep_float: Sequence[str] = (), float_attention: bool = True) -> list[str]:
    """The nodes ``quantize_int8`` leaves in float: those whose names contain one of
    ``keep_float``, plus the attention modules' with ``float_attention``. A substring that
    names no node is an error (a typo would otherwise quantise everything silently)."""
    names = [n.name for n in graph.node]
    for part in keep_float:
        if not any(part in name for name in names):
            raise SlimposeError(f"--keep-float {part!r}: no node of the model has it in its name "
                                f"(names look like {names[0]!r})")
    chosen = {name for name in names if any(part in name for part in keep_float)}
    if float_attention:
        chosen.update(attention_nodes(graph))
    return [name for name in names if name in chosen]


def quantize_int8(
    onnx_in: str | Path,
    onnx_out: str | Path,
    calibration_crops: np.ndarray,
    per_channel: bool = True,
    *,
    preprocess: bool = True,
    activation_type: str = "uint8",
    calibrate_method: str = "minmax",
    keep_float: Sequence[str] = (),
    float_attention: bool = True,
    reduce_range: bool | None = None,
) -> dict:
    """Static INT8 quantisation (QDQ) of ``onnx_in`` into ``onnx_out``.

    ``calibration_crops``: (M, 3, H, W) float32 normalised network inputs. Weights are
    signed INT8 (per output channel with ``per_channel``), activations unsigned INT8
    ("uint8", the U8S8 scheme ORT recommends on x86) or "int8". ``calibrate_method``:
    "minmax", "entropy" or "percentile". ``keep_float``: substrings of ONNX node names
    (e.g. ``/stem/stem.0/``) whose nodes stay float. ``float_attention`` keeps every
    module that computes a Softmax in float (see :func:`attention_nodes`).
    ``reduce_range`` quantises weights to 7 bits;
    None = on where the CPU lacks VNNI, whose U8S8 kernels (AVX2 ``vpmaddubsw``) saturate
    16-bit sums of full-range products (ONNX Runtime's advice). The slimpose
    ``metadata_props`` are copied to the result (plus a ``quantization`` entry). Returns
    a summary dict. ``onnx_out`` is checked first (:func:`~slimpose.deploy.export.check_onnx_output`):
    ``onnx_in`` itself (through a link or another spelling of its path too), a directory
    or an existing file that is not an ONNX model is an :class:`~slimpose.errors.OutputError`.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    onnx_in, onnx_out = Path(onnx_in), check_onnx_output(onnx_out, [onnx_in])
    meta = read_onnx_metadata(onnx_in)
    src = onnx.load(str(onnx_in))
    crops = np.asarray(calibration_crops, dtype=np.float32)
    h, w = meta.input_size
    if crops.ndim != 4 or crops.shape[1:] != (3, h, w) or not len(crops):
        raise SlimposeError(f"calibration crops must be (M, 3, {h}, {w}) with M >= 1, got {crops.shape}")
    inp = src.graph.input[0]
    dim0 = inp.type.tensor_type.shape.dim[0]
    static_batch = dim0.dim_value if dim0.HasField("dim_value") else None
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if calibrate_method not in methods:
        raise SlimposeError(f"unknown calibration method {calibrate_method!r}; use {', '.join(methods)}")
    act = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}[activation_type]

    if reduce_range is None:
        reduce_range = activation_type == "uint8" and cpu_lacks_vnni()
    info = {"format": "QDQ", "weights": "int8" + (" per-channel" if per_channel else " per-tensor")
            + (" reduced to 7 bits" if reduce_range else ""),
            "activations": activation_type, "calibration": calibrate_method, "num_calibration_crops": int(len(crops))}
    with tempfile.TemporaryDirectory(prefix="slimpose-quant-") as tmp, atomic_path(onnx_out) as staged:
        model_path = onnx_in
        if preprocess:
            from onnxruntime.quantization.shape_inference import quant_pre_process

            pre = Path(tmp) / "pre.onnx"
            try:
                quant_pre_process(str(onnx_in), str(pre), skip_symbolic_shape=True)
                model_path = pre
            except Exception:  # pre-processing is an optimisation; quantise the raw model
                model_path = onnx_in
        graph = onnx.load(str(model_path)).graph
        exclude = float_node_names(graph, keep_float, float_attention)
        info["float_nodes"] = len(exclude)
        info["keep_float"] = list(keep_float)
        info["float_attention"] = bool(float_attention)
        quantize_static(
            str(model_path), str(staged), _CropReader(inp.name, crops, static_batch),
            quant_format=QuantFormat.QDQ, per_channel=per_channel, activation_type=act,
            weight_type=QuantType.QInt8, calibrate_method=methods[calibrate_method],
            nodes_to_exclude=exclude, reduce_range=reduce_range,
            # a LayerNormalization's scale is a vector over its normalised axes: per channel
            # is along its last axis (ORT's default axis 1 misses a rank-1 scale and warns)
            extra_options={"QDQOpTypePerChannelSupportToAxis": {"LayerNormalization": -1}},
        )
        q = onnx.load(str(staged))
        props = {prop.key: prop.value for prop in src.metadata_props}
        props["quantization"] = json.dumps(info)
        set_onnx_metadata(q, props)
        onnx.save(q, str(staged))
        read_onnx_metadata(staged)  # the runtime can use it, or nothing replaces onnx_out
    return {"path": str(onnx_out), **info,
            "size_float_mb": onnx_in.stat().st_size / 2**20, "size_int8_mb": onnx_out.stat().st_size / 2**20}


def _latency_ms(session, x: np.ndarray, warmup: int, iters: int) -> list[float]:
    feed = {session.get_inputs()[0].name: x}
    out = [session.get_outputs()[0].name]
    for _ in range(warmup):
        session.run(out, feed)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        session.run(out, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def compare_int8(float_path: str | Path, int8_path: str | Path, crops: np.ndarray, threads: int = 2,
                 warmup: int = 5, iters: int = 30, rounds: int = 3, pck_thr: float = 0.05) -> dict:
    """Keypoint agreement and latency of an INT8 model against its float original.

    Both models decode ``crops`` ((M, 3, H, W) normalised inputs) with the codec in the
    file's metadata; errors are in input-crop pixels. ``pck`` is the fraction of
    keypoints where the INT8 prediction lies within ``pck_thr`` x input width of the float
    one. Latency: batch 1 (the model's static batch if larger), ``threads`` intra-op
    threads, median over ``iters`` runs interleaved in ``rounds`` blocks.
    """
    f_est = OnnxPoseEstimator(float_path, threads=threads)
    q_est = OnnxPoseEstimator(int8_path, threads=threads)
    x = np.asarray(crops, dtype=np.float32)
    f_out, q_out = f_est.forward(x), q_est.forward(x)
    f_kpts, f_scores = f_est.decode(f_out)
    q_kpts, q_scores = q_est.decode(q_out)
    err = np.linalg.norm(np.asarray(f_kpts, np.float64) - np.asarray(q_kpts, np.float64), axis=-1)
    w = f_est.input_size[1]

    b = f_est.static_batch or 1
    one = np.ascontiguousarray(x[:1].repeat(b, axis=0))
    f_sess, q_sess = make_session(float_path, threads=threads), make_session(int8_path, threads=threads)
    f_times: list[float] = []
    q_times: list[float] = []
    per = max(1, iters // rounds)
    for r in range(rounds):
        f_times += _latency_ms(f_sess, one, warmup if r == 0 else 1, per)
        q_times += _latency_ms(q_sess, one, warmup if r == 0 else 1, per)
    f_ms, q_ms = statistics.median(f_times), statistics.median(q_times)
    return {
        "num_crops": int(len(x)),
        "input": f"{f_est.input_size[0]}x{f_est.input_size[1]}",
        "mean_kpt_err_px": float(err.mean()),
        "median_kpt_err_px": float(np.median(err)),
        "max_kpt_err_px": float(err.max()),
        f"pck@{pck_thr:g}": float((err <= pck_thr * w).mean()),
        "pck_thr_px": pck_thr * w,
        "mean_abs_score_diff": float(np.abs(np.asarray(f_scores) - np.asarray(q_scores)).mean()),
        "output_correlation": float(np.corrcoef(f_out.ravel().astype(np.float64), q_out.ravel().astype(np.float64))[0, 1])
        if f_out.std() > 0 and q_out.std() > 0 else float("nan"),
        "max_abs_output_diff": float(np.abs(f_out - q_out).max()),
        "max_abs_output": float(np.abs(f_out).max()),
        "float_ms": f_ms,
        "int8_ms": q_ms,
        "speedup": f_ms / q_ms,
        "batch": b,
        "threads": threads,
    }
