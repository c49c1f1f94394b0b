"""ONNX export: re-parameterise and fold BN, export, write the metadata the runtime needs,
check ONNX Runtime against PyTorch, and only then write the file.

The exported file is self-describing: ``metadata_props`` holds a
:class:`~slimpose.deploy.runtime.PoseModelMetadata` (keypoint layout, input size,
mean/std and colour order from the model's registry entry, box padding, the codec's
fields, flip index, model name, the weights' file name and hash), so
:class:`~slimpose.deploy.runtime.OnnxPoseEstimator` needs nothing but the file.

The file is built in memory and written with one rename (:mod:`slimpose.io`): a failed
export, check or parity test leaves any previous file at the path as it was.

With ``fp16_weights`` the deployed weights are rounded to float16 before export and
stored as float16 initializers, each cast to float32 once when ONNX Runtime loads the
file (it folds the casts): half the file, float32 arithmetic, and the parity check
compares against those same rounded weights.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from slimpose import __version__
from slimpose.codecs import build_codec
from slimpose.data.transforms import BOX_PADDING
from slimpose.errors import OutputError, SlimposeError
from slimpose.io import atomic_write, file_sha256
from slimpose.keypoints import KeypointLayout, get_layout

if TYPE_CHECKING:
    import torch.nn as nn

# This module imports torch and onnxruntime only inside the functions that export, so
# the CLI can read DEFAULT_TOLERANCE for its help without loading them.

INPUT_NAME = "input"
OUTPUT_NAME = "output"
# Allowed max |ONNX Runtime - PyTorch| in units of max(1, max |PyTorch output|). Kernel
# rounding differences grow with depth: random-weight LPN-152 reaches ~3e-4 on O(1)
# outputs, trained models far less; a wrong BN fold or weight layout gives ~1e-1.
DEFAULT_TOLERANCE = 1e-3


class ExportError(SlimposeError):
    """The model could not be exported, or the export does not match PyTorch."""


def _is_onnx_model(path: Path) -> bool:
    """Whether ``path`` holds an ONNX model: it parses as one and has a graph (a
    checkpoint's zip, a config or an image does not parse)."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        return onnx.load(str(path), load_external_data=False).HasField("graph")
    except (DecodeError, OSError, ValueError):
        return False


def check_onnx_output(out: str | Path, inputs: Sequence[str | Path | None] = (), name: str | None = None) -> Path:
    """Refuse, with one :class:`OutputError` naming ``out``, an ONNX output path that
    cannot be written as a file (a directory, or a path below a file) or whose writing
    would lose a file: one of ``inputs`` (the same file through a link or another
    spelling of its path too), or an existing file that is not an ONNX model (e.g. a
    checkpoint). An existing ONNX file may be replaced: a re-export is ordinary, and an
    empty file holds nothing to lose. ``name`` (e.g. ``"--out"``) starts the message.
    Returns ``out`` as a Path."""
    out = Path(out)
    shown = f"{name} {out}" if name else str(out)
    if out.is_dir():
        raise OutputError(f"{shown}: is a folder; this command writes one file: give a file name, "
                          f"e.g. {out / 'model.onnx'}")
    folder = next(p for p in out.absolute().parents if p.exists())
    if not folder.is_dir():
        raise OutputError(f"{shown}: {folder} is a file, not a folder")
    if not out.exists():
        return out
    for source in inputs:
        if source is not None and Path(source).exists() and out.samefile(source):
            raise OutputError(f"{shown}: is the input {source}; writing it would replace that file")
    if out.stat().st_size and not _is_onnx_model(out):
        raise OutputError(f"{shown}: exists and is not an ONNX file; not replacing it (give another name)")
    return out


def weights_record(path: str | Path) -> dict:
    """How the metadata names a checkpoint: its file name and SHA-256, not its local path."""
    return {"file": Path(path).name, "sha256": file_sha256(path)}


def default_layout(num_keypoints: int) -> KeypointLayout:
    """The built-in layout with ``num_keypoints`` joints (coco, mpii, lsp in that order),
    else a generic one without flip pairs: for exports and benchmarks given only K."""
    for name in ("coco", "mpii", "lsp"):
        layout = get_layout(name)
        if layout.num_keypoints == num_keypoints:
            return layout
    return KeypointLayout(name=f"generic{num_keypoints}", names=tuple(f"kp{i}" for i in range(num_keypoints)),
                          flip_pairs=(), skeleton=(), sigmas=(0.05,) * num_keypoints)


def set_onnx_metadata(onnx_model, metadata: dict[str, str]) -> None:
    """Replace the ``metadata_props`` of an ``onnx.ModelProto`` by ``metadata``."""
    del onnx_model.metadata_props[:]
    for key, value in metadata.items():
        prop = onnx_model.metadata_props.add()
        prop.key, prop.value = key, value


def _graph_shape(value_info) -> list:
    """A graph input/output's shape: ints, dimension names for dynamic axes."""
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in value_info.type.tensor_type.shape.dim]


def _max_abs_diff(model: nn.Module, session, batches: list[np.ndarray]) -> tuple[float, float]:
    """(max |torch - onnx|, max |torch|) over the batches."""
    import torch

    worst, scale = 0.0, 0.0
    with torch.inference_mode():
        for x in batches:
            ref = model(torch.from_numpy(x)).numpy()
            got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
            if ref.shape != got.shape:
                raise ExportError(f"ONNX output shape {got.shape} differs from PyTorch {ref.shape}")
            worst = max(worst, float(np.abs(ref.astype(np.float64) - got).max()))
            scale = max(scale, float(np.abs(ref).max()))
    return worst, scale


def _batches(x: np.ndarray, batch: int) -> list[np.ndarray]:
    """Split (M, 3, H, W) into batches of exactly ``batch`` (static models), dropping a tail."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if batch <= 0:
        return [x]
    return [x[i:i + batch] for i in range(0, len(x) - batch + 1, batch)]


def export_onnx(
    model: nn.Module,
    out_path: str | Path,
    input_size: tuple[int, int],
    layout: KeypointLayout,
    dynamic_batch: bool = False,
    opset: int = 17,
    check: bool = True,
    real_crops: np.ndarray | None = None,
    *,
    batch_size: int = 1,
    sigma: float = 2.0,
    decode: str | None = None,
    beta: float = 160.0,
    model_name: str | None = None,
    output_kind: str | None = None,
    weights: dict | None = None,
    model_kwargs: dict | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    inputs: Sequence[str | Path] = (),
    fp16_weights: bool = False,
) -> dict:
    """Export ``model`` in deployed form to ``out_path`` (ONNX, input "input", output "output").

    The model is copied, re-parameterised (BN folded, branches merged) and put in eval
    mode; the original is not touched. Normalisation comes from ``model.model_info`` (the
    registry), the decoding from ``decode`` or else :func:`~slimpose.models.registry.default_decode`. With ``check``,
    ONNX Runtime (CPU) is compared with the deployed PyTorch model on random inputs and
    on ``real_crops`` ((M, 3, H, W) normalised crops, e.g. from
    :func:`slimpose.deploy.runtime.crops_from_images`); a max abs difference above
    ``tolerance`` x max(1, max |output|) is an :class:`ExportError` and nothing is
    written. ``weights`` (see :func:`weights_record`) names the weights in the metadata.
    ``fp16_weights`` stores the deployed weights as float16 (see the module docstring).
    ``out_path`` is checked first (:func:`check_onnx_output`): it may not be one of
    ``inputs`` (the files the model came from, e.g. its checkpoint), a directory, or an
    existing file that is not an ONNX model; each is an :class:`OutputError`.

    Returns ``{"path", "max_abs_diff_random", "max_abs_diff_real", "max_abs_output_random",
    "max_abs_output_real", "tolerance", "output_shape", "metadata"}`` (None where not
    checked); the ``max_abs_output_*`` values give the scale the differences are
    measured against; ``metadata`` is the :class:`PoseModelMetadata` written.
    """
    import onnx
    import torch

    from slimpose.models.reparam import reparameterize_model
    from slimpose.deploy.runtime import PoseModelMetadata, RuntimeModelError
    from slimpose.models.registry import ModelInfo, default_decode

    out_path = check_onnx_output(out_path, inputs)
    h, w = int(input_size[0]), int(input_size[1])
    info = getattr(model, "model_info", None) or ModelInfo()
    model_name = model_name or getattr(model, "model_name", type(model).__name__)
    output_kind = output_kind or getattr(model, "output_kind", None)
    try:
        codec = build_codec(output_kind, (h, w), sigma=sigma, decode=decode or default_decode(model), beta=beta)
    except ValueError as e:
        raise ExportError(f"model {model_name!r}: {e}") from None

    deployed = reparameterize_model(model).cpu().float().eval()
    if fp16_weights:
        _round_to_fp16(deployed)
    batch = 1 if dynamic_batch else int(batch_size)
    dummy = torch.zeros(batch, 3, h, w)
    with torch.inference_mode():
        out = deployed(dummy)
    if not isinstance(out, torch.Tensor):
        raise ExportError(f"model {model_name!r} returns {type(out).__name__}, not one tensor; cannot export")
    try:
        codec = codec.fitted_to(tuple(out.shape))
    except ValueError as e:
        raise ExportError(f"model {model_name!r} at {h}x{w}: {e}") from None
    problem = codec.output_shape_problem(tuple(out.shape), layout.num_keypoints)
    if problem:
        raise ExportError(f"model {model_name!r} with layout {layout.name!r} ({layout.num_keypoints} keypoints): "
                          f"{problem}; build it with num_joints={layout.num_keypoints}")
    metadata = PoseModelMetadata(
        model_name=model_name, input_size=(h, w), mean=tuple(info.mean), std=tuple(info.std),
        color_order=info.color_order, box_padding=BOX_PADDING, layout=layout, flip_index=tuple(layout.flip_index),
        codec=codec, output_shape=tuple(int(v) for v in out.shape[1:]), dynamic_batch=dynamic_batch,
        weights=weights, model_kwargs=dict(model_kwargs or {}),
    )

    buffer = io.BytesIO()
    dynamic_axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript exporter deprecation and tracer warnings
        torch.onnx.export(
            deployed, (dummy,), buffer, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic_axes, opset_version=opset, do_constant_folding=True, dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    if fp16_weights:
        store_weights_fp16(proto)
    set_onnx_metadata(proto, metadata.to_props())
    proto.producer_name, proto.producer_version = "slimpose", __version__
    proto.doc_string = f"slimpose {model_name} ({output_kind}, input {h}x{w}, layout {layout.name})"
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"model {model_name!r}: the exported graph is not valid ONNX ({' '.join(str(e).split())})") from None
    try:  # what the runtime will read back
        PoseModelMetadata.from_props({p.key: p.value for p in proto.metadata_props}, out_path,
                                     _graph_shape(proto.graph.input[0]), _graph_shape(proto.graph.output[0]))
    except RuntimeModelError as e:
        raise ExportError(f"model {model_name!r}: the export would not load: {e}") from None
    model_bytes = proto.SerializeToString()

    result = {"path": str(out_path), "max_abs_diff_random": None, "max_abs_diff_real": None,
              "max_abs_output_random": None, "max_abs_output_real": None, "tolerance": tolerance,
              "output_shape": list(metadata.output_shape), "metadata": metadata}
    if check:
        try:
            result.update(_parity(deployed, model_bytes, (h, w), batch, dynamic_batch, real_crops, seed))
        except ExportError as e:
            raise ExportError(f"model {model_name!r}: {e}. Nothing was written") from None
        _fail_above_tolerance(model_name, result, tolerance)
    with atomic_write(out_path, "wb") as f:
        f.write(model_bytes)
    return result


def _round_to_fp16(model: nn.Module) -> None:
    """Round ``model``'s floating-point parameters and buffers to float16 values, in place
    (they stay float32 tensors)."""
    import torch

    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())


# A Cast node costs more bytes than float16 saves on a handful of values.
_FP16_MIN_ELEMENTS = 16


def _exact_float16(init) -> np.ndarray | None:
    """A float32 initializer's values as float16 when it has enough of them and float16
    holds every one exactly, else None (other types are not converted)."""
    import onnx
    from onnx import numpy_helper

    if init.data_type != onnx.TensorProto.FLOAT:
        return None
    values = numpy_helper.to_array(init)
    if values.size < _FP16_MIN_ELEMENTS:
        return None
    half = values.astype(np.float16)
    return half if np.array_equal(half.astype(np.float32), values) else None


def store_weights_fp16(proto) -> int:
    """Store the float32 initializers of an ``onnx.ModelProto`` that float16 holds exactly
    as float16 initializers, each cast back to float32 by a node at the top of the graph
    (ONNX Runtime folds the casts when it loads the file). Values are unchanged; returns
    how many initializers were converted."""
    import onnx
    from onnx import numpy_helper

    graph = proto.graph
    kept, halves, casts = [], [], []
    for init in graph.initializer:
        half = _exact_float16(init)
        if half is None:
            kept.append(init)
            continue
        halves.append(numpy_helper.from_array(half, f"{init.name}__fp16"))
        casts.append(onnx.helper.make_node("Cast", [halves[-1].name], [init.name], to=onnx.TensorProto.FLOAT,
                                           name=f"{init.name}__to_float"))
    nodes = casts + list(graph.node)
    del graph.initializer[:], graph.node[:]
    graph.initializer.extend(kept + halves)
    graph.node.extend(nodes)
    return len(casts)


def _parity(deployed: nn.Module, model_bytes: bytes, size: tuple[int, int], batch: int, dynamic_batch: bool,
            real_crops: np.ndarray | None, seed: int) -> dict:
    import onnxruntime as ort

    h, w = size
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1  # a correctness check; one thread is deterministic and never oversubscribes
    try:
        session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own error types: a graph it cannot type-check or run
        raise ExportError(f"ONNX Runtime cannot load the exported graph ({' '.join(str(e).split())})") from None
    per_batch = 0 if dynamic_batch else batch
    rng = np.random.default_rng(seed)
    random_x = rng.standard_normal((2 if dynamic_batch else 2 * batch, 3, h, w)).astype(np.float32)
    found = {}
    found["max_abs_diff_random"], found["max_abs_output_random"] = _max_abs_diff(
        deployed, session, _batches(random_x, per_batch))
    if real_crops is not None and len(real_crops):
        real = np.asarray(real_crops, dtype=np.float32)
        if real.shape[1:] != (3, h, w):
            raise ExportError(f"real crops have shape {real.shape[1:]}, expected (3, {h}, {w})")
        if not dynamic_batch and len(real) < batch:
            real = np.concatenate([real] * (batch // len(real) + 1))[:batch]
        found["max_abs_diff_real"], found["max_abs_output_real"] = _max_abs_diff(
            deployed, session, _batches(real, per_batch))
    return found


def _fail_above_tolerance(model_name: str, result: dict, tolerance: float) -> None:
    for inputs in ("random", "real"):
        diff, scale = result[f"max_abs_diff_{inputs}"], result[f"max_abs_output_{inputs}"]
        if diff is not None and not diff <= tolerance * max(1.0, scale):
            raise ExportError(
                f"model {model_name!r}: ONNX Runtime differs from PyTorch by {diff:.3g} on {inputs} inputs "
                f"(outputs up to {scale:.3g}); allowed {tolerance:g} x max(1, {scale:.3g}). Nothing was written")
