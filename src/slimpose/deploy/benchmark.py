"""Latency of deployed models: PyTorch eager and ONNX Runtime, measured in the same run.

Each model is built once, re-parameterised (the deployed form) and exported to a
temporary ONNX file; then every (model, backend) pair is timed in interleaved rounds
(round-robin blocks of iterations), so slow drifts of the machine (clock ramp-up, other
load) hit all of them alike and their ratios are meaningful. Timing the models one after
another is not: the first one measured 1.5x slower than the same model timed last.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from slimpose.deploy.complexity import DEFAULT_INPUT, format_input
from slimpose.models.reparam import reparameterize_model
from slimpose.errors import SlimposeError
from slimpose.machine import cpu_name

BACKENDS = ("torch", "onnxruntime", "torch-cuda", "onnxruntime-cuda")


def paper_input_size(name: str) -> tuple[int, int]:
    """The input size of a model's first paper figure (256x192 without figures)."""
    from slimpose.models.registry import get_model_entry

    entry = get_model_entry(name)
    return tuple(entry.paper[0].input_size) if entry.paper else DEFAULT_INPUT


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


class _Runner:
    """One backend of one model: ``run()`` does one timed forward pass."""

    def __init__(self, backend: str, deployed, onnx_path: Path | None, x: np.ndarray, threads: int,
                 spin: bool = True):
        self.backend = backend
        self.times: list[float] = []
        if backend == "torch":
            self.model, self.x = deployed, torch.from_numpy(x)
            self.sync = None
        elif backend == "torch-cuda":
            if not torch.cuda.is_available():
                raise SlimposeError("backend 'torch-cuda' needs a CUDA GPU, and torch.cuda.is_available() is False here")
            self.model = deployed.to("cuda")
            self.x = torch.from_numpy(x).to("cuda")
            self.sync = torch.cuda.synchronize
        else:
            import onnxruntime as ort

            from slimpose.deploy.runtime import make_session

            if backend == "onnxruntime-cuda":
                if "CUDAExecutionProvider" not in ort.get_available_providers():
                    raise SlimposeError("backend 'onnxruntime-cuda' needs onnxruntime-gpu with CUDAExecutionProvider; "
                                        f"available here: {', '.join(ort.get_available_providers())}")
                providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
            else:
                providers = ["CPUExecutionProvider"]
            self.session = make_session(onnx_path, providers, threads, spin=spin)
            self.feed = {self.session.get_inputs()[0].name: x}
            self.out = [self.session.get_outputs()[0].name]

    def run(self) -> float:
        if self.backend.startswith("torch"):
            t0 = time.perf_counter()
            with torch.inference_mode():
                self.model(self.x)
            if self.sync:
                self.sync()
            return time.perf_counter() - t0
        t0 = time.perf_counter()
        self.session.run(self.out, self.feed)
        return time.perf_counter() - t0


def profile_onnx(onnx_path: str | Path, x: np.ndarray, threads: int, iters: int = 20, warmup: int = 5,
                 spin: bool = True) -> list[dict]:
    """Where ONNX Runtime spends its time: per op type, the kernel time per inference (ms),
    its share of all kernel time and the number of nodes, from ORT's own per-node trace
    over ``iters`` runs after ``warmup`` unprofiled ones. Sorted by time, largest first.
    Fused nodes appear under ORT's fused op types (e.g. FusedConv)."""
    import json

    from slimpose.deploy.runtime import make_session

    with tempfile.TemporaryDirectory(prefix="slimpose-profile-") as tmp:
        session = make_session(onnx_path, threads=threads, spin=spin, profile_prefix=str(Path(tmp) / "ort"))
        feed = {session.get_inputs()[0].name: x}
        for _ in range(warmup):
            session.run(None, feed)
        for _ in range(iters):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    first_timed = runs[-iters]["ts"] if len(runs) >= iters else 0
    per_type: dict[str, dict] = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time") or e["ts"] < first_timed:
            continue
        op = e.get("args", {}).get("op_name", "?")
        slot = per_type.setdefault(op, {"op_type": op, "us": 0.0, "nodes": set()})
        slot["us"] += e["dur"]
        slot["nodes"].add(e["name"])
    total = sum(v["us"] for v in per_type.values()) or 1.0
    rows = [{"op_type": v["op_type"], "ms_per_run": v["us"] / iters / 1e3, "share": v["us"] / total,
             "nodes": len(v["nodes"])} for v in per_type.values()]
    return sorted(rows, key=lambda r: -r["ms_per_run"])


def format_profile_table(rows: list[dict]) -> str:
    lines = [f"  {'op type':<24} {'ms/run':>8} {'share':>7} {'nodes':>6}"]
    lines += [f"  {r['op_type']:<24} {r['ms_per_run']:>8.3f} {100 * r['share']:>6.1f}% {r['nodes']:>6}" for r in rows]
    return "\n".join(lines)


def onnx_model_file(spec: str) -> Path | None:
    """The ONNX file a bench spec names: a path ending in .onnx, or a shipped weight name
    (checked against its manifest's sha256); None for a registered model name."""
    from slimpose.weights import list_weights

    if spec.lower().endswith(".onnx"):
        path = Path(spec)
        if not path.is_file():
            raise SlimposeError(f"{spec}: ONNX file not found")
        return path
    weight = next((w for w in list_weights() if w.name == spec), None)
    if weight is None:
        return None
    weight.verify()
    return weight.path


def onnx_input_size(onnx_path: Path) -> tuple[int, int]:
    """(H, W) of an ONNX model's image input, at most the runtime's MAX_INPUT_SIDE a side:
    the graph's fixed H and W, or where they are dynamic the slimpose metadata's
    ``input_size`` (bounded the same way). A size it cannot bound is one error naming the
    file and the field, before any input is built."""
    import onnx
    from google.protobuf.message import DecodeError

    from slimpose.deploy.runtime import MAX_INPUT_SIDE, read_onnx_metadata

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except (DecodeError, OSError, ValueError) as e:
        raise SlimposeError(f"{onnx_path}: not a readable ONNX model ({e})") from None
    graph = model.graph
    if not graph.input or len(graph.input[0].type.tensor_type.shape.dim) != 4:
        raise SlimposeError(f"{onnx_path}: the input must be (N, 3, H, W) with a fixed H and W to be timed")
    inp = graph.input[0]
    dims = inp.type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
    if not all(d.HasField("dim_value") for d in dims[2:4]):
        if not any(p.key == "slimpose_version" for p in model.metadata_props):
            raise SlimposeError(f"{onnx_path}: the input must be (N, 3, H, W) with a fixed H and W to be timed "
                                f"(input {inp.name!r} is {shape})")
        return read_onnx_metadata(onnx_path).input_size  # checks 'input_size' against MAX_INPUT_SIDE
    for axis, side in ((2, "H"), (3, "W")):
        if not 1 <= dims[axis].dim_value <= MAX_INPUT_SIDE:
            raise SlimposeError(f"{onnx_path}: input {inp.name!r} shape {shape}: {side} = {dims[axis].dim_value} is "
                                f"outside 1..{MAX_INPUT_SIDE} pixels a side (pose crops are a few hundred); "
                                f"not timing it")
    return int(dims[2].dim_value), int(dims[3].dim_value)


def model_spec(spec: str, input_size: tuple[int, int] | None = None) -> tuple[str, tuple[int, int]]:
    """``"lpn_50"`` or ``"lpn_50@128x96"`` → (name, input size): a size after ``@`` wins,
    then ``input_size``, then the model's paper input size."""
    name, _, hxw = spec.partition("@")
    if hxw:
        try:
            h, w = (int(v) for v in hxw.lower().split("x"))
        except ValueError:
            raise SlimposeError(f"{spec!r}: the size after @ must be HxW, e.g. {name}@128x96") from None
        return name, (h, w)
    return name, tuple(input_size) if input_size is not None else paper_input_size(name)


def benchmark(
    models: list[str],
    backends=("torch", "onnxruntime"),
    threads: int = 2,
    batch: int = 1,
    input_size: tuple[int, int] | None = None,
    warmup: int = 10,
    iters: int = 50,
    device: str = "cpu",
    rounds: int = 5,
    num_joints: int = 17,
    progress=None,
    spin: bool = True,
    profile: bool = False,
) -> list[dict]:
    """Median / p90 latency (ms per batch) and throughput (images/s) of each model on
    each backend. A model may carry its own input size, ``"lpn_50@128x96"``, so that
    different sizes are compared in one run.

    A model may also be an ONNX file (``path.onnx``, e.g. an INT8 one from ``slimpose
    quantize``) or a shipped weight name: it is timed on the ONNX Runtime backends only, at
    its file's input size.

    ``backends``: "torch" (eager, deployed model, ``torch.set_num_threads(threads)``),
    "onnxruntime" (CPU EP, ``intra_op_num_threads=threads``), "torch-cuda",
    "onnxruntime-cuda" (clear error where no GPU). ``device="cuda"`` maps "torch" to
    "torch-cuda". ``input_size`` None = each model's paper input size. Iterations are
    split into ``rounds`` blocks that alternate between backends.

    ``spin=False`` stops ONNX Runtime's idle threads from spin-waiting; PyTorch's OpenMP
    threads follow ``OMP_WAIT_POLICY``, which must be set before torch is imported (the
    CLI's ``--no-spin`` does both). On a machine where other processes hold cores,
    spinning threads can make multi-threaded latency many times worse than one thread.
    All models are built first; then every (model, backend) takes its turn in each round,
    so the ratios between models hold as well as those between backends. Each row records
    the 1-minute load average when timing starts.
    ``profile``: ONNX Runtime CPU rows also get ``"profile"``, the per-op-type time split
    of :func:`profile_onnx` (a separate profiled session, after the timed runs).
    """
    backends = [b.strip() for b in (backends.split(",") if isinstance(backends, str) else backends) if b.strip()]
    if device == "cuda":
        backends = ["torch-cuda" if b == "torch" else b for b in backends]
    elif device != "cpu":
        raise SlimposeError(f"unknown device {device!r}; use cpu or cuda")
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise SlimposeError(f"unknown backend(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(BACKENDS)}")
    if batch < 1 or threads < 1 or iters < 1 or warmup < 0:
        raise SlimposeError("batch, threads and iters must be >= 1 and warmup >= 0")

    rows: list[dict] = []
    cpu = torch.cuda.get_device_name() if device == "cuda" and torch.cuda.is_available() else cpu_name()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory(prefix="slimpose-bench-") as tmp:
            entries = [_prepare(spec, backends, input_size, batch, num_joints, threads, spin, Path(tmp))
                       for spec in models]
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
            runners = [r for entry in entries for r in entry["runners"]]
            for r in runners:
                for _ in range(warmup):
                    r.run()
            # Every runner of every model takes its turn in each round, so a slow start of the
            # machine (clock ramp-up, allocator growth) or a burst of other load hits all of
            # them alike and their ratios hold; timing one model after another does not.
            per_round = max(1, -(-iters // rounds))
            done = 0
            while done < iters:
                n = min(per_round, iters - done)
                for r in runners:
                    r.times.extend(r.run() for _ in range(n))
                done += n
            for entry in entries:
                for r in entry["runners"]:
                    ms = [t * 1e3 for t in r.times]
                    median = statistics.median(ms)
                    row = {
                        "model": entry["name"], "backend": r.backend, "batch": batch, "threads": threads,
                        "input": format_input(entry["size"]), "median_ms": median, "p90_ms": _percentile(ms, 90),
                        "mean_ms": statistics.fmean(ms), "min_ms": min(ms),
                        "throughput": batch * 1e3 / median, "iters": len(ms),
                        "cpu": cpu, "load_avg_1min": load, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
                        "ort_spin": spin if r.backend.startswith("onnxruntime") else None,
                    }
                    if profile and r.backend == "onnxruntime":
                        row["profile"] = profile_onnx(entry["onnx_path"], entry["x"], threads, spin=spin)
                    rows.append(row)
                    if progress:
                        progress(row)
    finally:
        torch.set_num_threads(old_threads)
    return rows


def _prepare(spec: str, backends, input_size, batch: int, num_joints: int, threads: int, spin: bool,
             tmp: Path) -> dict:
    """One bench entry: its name, input size, input batch, ONNX file and a runner per backend."""
    from slimpose.deploy.export import default_layout, export_onnx
    from slimpose.models.registry import build_model

    onnx_path = onnx_model_file(spec)
    if onnx_path is not None:  # an exported file (float or INT8): ONNX Runtime only
        name, size = spec, onnx_input_size(onnx_path)
        x = np.random.default_rng(0).standard_normal((batch, 3, *size)).astype(np.float32)
        file_backends = [b for b in backends if b.startswith("onnxruntime")]
        if not file_backends:
            raise SlimposeError(f"{spec}: an ONNX file runs on the onnxruntime backends only")
        runners = [_Runner(b, None, onnx_path, x, threads, spin) for b in file_backends]
    else:
        name, size = model_spec(spec, input_size)
        torch.manual_seed(0)
        deployed = reparameterize_model(build_model(name, num_joints=num_joints, input_size=size).eval(),
                                        inplace=True)
        x = np.random.default_rng(0).standard_normal((batch, 3, *size)).astype(np.float32)
        if any(b.startswith("onnxruntime") for b in backends):
            onnx_path = tmp / f"{name}_{format_input(size)}.onnx"
            export_onnx(deployed, onnx_path, size, default_layout(num_joints), batch_size=batch, check=False,
                        model_name=name)
        runners = [_Runner(b, deployed if b == "torch" else _copy_for(b, deployed), onnx_path, x, threads, spin)
                   for b in backends]
    return {"name": name, "size": size, "x": x, "onnx_path": onnx_path, "runners": runners}


def _copy_for(backend: str, deployed):
    import copy

    return copy.deepcopy(deployed) if backend == "torch-cuda" else deployed


def format_bench_table(rows: list[dict]) -> str:
    """Text table. "speed-up" compares each backend with the model's first one; "x row 1"
    is the latency as a fraction of the first row's, the ratio between models that holds
    across machines when all were timed in one run."""
    header = (f"{'model':<14} {'input':>8} {'backend':<17} {'batch':>5} {'thr':>3} {'median ms':>10} "
              f"{'p90 ms':>8} {'img/s':>8} {'speed-up':>8} {'x row 1':>8}")
    lines = [header, "-" * len(header)]
    first: dict[tuple, float] = {}
    for r in rows:
        key = (r["model"], r["input"], r["batch"], r["threads"])
        base = first.setdefault(key, r["median_ms"])
        lines.append(f"{r['model']:<14} {r['input']:>8} {r['backend']:<17} {r['batch']:>5} {r['threads']:>3} "
                     f"{r['median_ms']:>10.2f} {r['p90_ms']:>8.2f} {r['throughput']:>8.1f} {base / r['median_ms']:>7.2f}x "
                     f"{r['median_ms'] / rows[0]['median_ms']:>8.3f}")
    return "\n".join(lines)
