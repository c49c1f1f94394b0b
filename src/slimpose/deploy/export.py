"""ONNX export: re-parameterise and fold BN, export, write the metadata the runtime needs,
and check ONNX Runtime against PyTorch.

The exported file is self-describing: ``metadata_props`` holds (as JSON strings) the
keypoint layout, input size, mean/std and colour order, output kind, heatmap stride,
sigma and default decoding, flip index, model name and slimpose version, so
:class:`slimpose.deploy.runtime.OnnxPoseEstimator` needs nothing but the file.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from slimpose import __version__
from slimpose.deploy.reparam import reparameterize_model
from slimpose.errors import SlimposeError
from slimpose.keypoints import KeypointLayout

INPUT_NAME = "input"
OUTPUT_NAME = "output"
# Kept in one place; the runtime reads them back from the file, not from here.
IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)
IMAGENET_STD_RGB = (58.395, 57.12, 57.375)
BOX_PADDING = 1.25


class ExportError(SlimposeError):
    """The model could not be exported, or the export does not match PyTorch."""


def build_metadata(
    *,
    model_name: str,
    output_kind: str,
    input_size: tuple[int, int],
    output_shape: tuple[int, ...],
    layout: KeypointLayout,
    sigma: float = 2.0,
    decode: str = "argmax",
    beta: float = 160.0,
    dynamic_batch: bool = False,
    extra: dict | None = None,
) -> dict[str, str]:
    """The ``metadata_props`` of an exported model; every value is a JSON string."""
    h, w = int(input_size[0]), int(input_size[1])
    meta: dict = {
        "slimpose_version": __version__,
        "model_name": model_name,
        "output_kind": output_kind,
        "input_size": [h, w],
        "input_layout": "NCHW",
        "color_order": "RGB",
        "pixel_range": "0-255",
        "mean": list(IMAGENET_MEAN_RGB),
        "std": list(IMAGENET_STD_RGB),
        "box_padding": BOX_PADDING,
        "layout": layout.to_dict(),
        "num_keypoints": layout.num_keypoints,
        "flip_index": layout.flip_index,
        "output_shape": [int(v) for v in output_shape[1:]],
        "dynamic_batch": bool(dynamic_batch),
    }
    if output_kind == "heatmap":
        hh, hw = int(output_shape[2]), int(output_shape[3])
        meta.update({
            "heatmap_size": [hh, hw],
            "heatmap_stride": [w / hw, h / hh],  # (x, y) input pixels per heatmap pixel
            "sigma": float(sigma),
            "decode": decode,
            "beta": float(beta),
            "flip_shift": True,
        })
    else:
        meta.update({"coordinate_format": "x/W, y/H, sigma_x, sigma_y (sigmoid-ed)"})
    meta.update(extra or {})
    return {k: json.dumps(v) for k, v in meta.items()}


def set_onnx_metadata(onnx_model, metadata: dict[str, str]) -> None:
    """Replace the ``metadata_props`` of an ``onnx.ModelProto`` by ``metadata``."""
    del onnx_model.metadata_props[:]
    for key, value in metadata.items():
        prop = onnx_model.metadata_props.add()
        prop.key, prop.value = key, value


def _max_abs_diff(model: nn.Module, session, batches: list[np.ndarray]) -> tuple[float, float]:
    """(max |torch - onnx|, max |torch|) over the batches."""
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
    extra_metadata: dict | None = None,
    seed: int = 0,
) -> dict:
    """Export ``model`` in deployed form to ``out_path`` (ONNX, input "input", output "output").

    The model is copied, re-parameterised (BN folded, branches merged) and put in eval
    mode; the original is not touched. With ``check``, ONNX Runtime (CPU) is compared
    with the deployed PyTorch model on random inputs and on ``real_crops`` ((M, 3, H, W)
    normalised crops, e.g. from :func:`slimpose.deploy.runtime.crops_from_images`).

    Returns ``{"path", "max_abs_diff_random", "max_abs_diff_real", "max_abs_output_random",
    "max_abs_output_real", "output_shape", "metadata"}`` (None where not checked); the
    ``max_abs_output_*`` values give the scale the differences are measured against.
    """
    import onnx

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    h, w = int(input_size[0]), int(input_size[1])
    model_name = model_name or getattr(model, "model_name", type(model).__name__)
    output_kind = output_kind or getattr(model, "output_kind", None)
    if output_kind not in ("heatmap", "coordinate"):
        raise ExportError(f"model {model_name!r}: unknown output kind {output_kind!r} (set output_kind=)")
    decode = decode or getattr(model, "default_decode", "argmax")

    deployed = reparameterize_model(model).cpu().float().eval()
    batch = 1 if dynamic_batch else int(batch_size)
    dummy = torch.zeros(batch, 3, h, w)
    with torch.inference_mode():
        out = deployed(dummy)
    if not isinstance(out, torch.Tensor):
        raise ExportError(f"model {model_name!r} returns {type(out).__name__}, not one tensor; cannot export")
    k = layout.num_keypoints
    if out.shape[1] != k:
        raise ExportError(f"model {model_name!r} predicts {out.shape[1]} keypoints but layout "
                          f"{layout.name!r} has {k}; build it with num_joints={k}")
    if output_kind == "heatmap" and out.dim() != 4:
        raise ExportError(f"heatmap model {model_name!r} returned shape {tuple(out.shape)}, expected (N, K, h, w)")
    if output_kind == "coordinate" and (out.dim() != 3 or out.shape[2] < 2):
        raise ExportError(f"coordinate model {model_name!r} returned shape {tuple(out.shape)}, expected (N, K, 4)")

    dynamic_axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript exporter deprecation and tracer warnings
        torch.onnx.export(
            deployed, (dummy,), str(out_path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic_axes, opset_version=opset, do_constant_folding=True, dynamo=False,
        )

    metadata = build_metadata(
        model_name=model_name, output_kind=output_kind, input_size=(h, w), output_shape=tuple(out.shape),
        layout=layout, sigma=sigma, decode=decode, beta=beta, dynamic_batch=dynamic_batch, extra=extra_metadata,
    )
    proto = onnx.load(str(out_path))
    set_onnx_metadata(proto, metadata)
    proto.producer_name, proto.producer_version = "slimpose", __version__
    proto.doc_string = f"slimpose {model_name} ({output_kind}, input {h}x{w}, layout {layout.name})"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out_path))

    result = {"path": str(out_path), "max_abs_diff_random": None, "max_abs_diff_real": None,
              "max_abs_output_random": None, "max_abs_output_real": None,
              "output_shape": [int(v) for v in out.shape[1:]], "metadata": metadata}
    if not check:
        return result

    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1  # a correctness check; one thread is deterministic and never oversubscribes
    session = ort.InferenceSession(str(out_path), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    n_random = 2 if dynamic_batch else 2 * batch
    random_x = rng.standard_normal((n_random, 3, h, w)).astype(np.float32)
    diff, scale = _max_abs_diff(deployed, session, _batches(random_x, 0 if dynamic_batch else batch))
    result["max_abs_diff_random"], result["max_abs_output_random"] = diff, scale
    if real_crops is not None and len(real_crops):
        real = np.asarray(real_crops, dtype=np.float32)
        if real.shape[1:] != (3, h, w):
            raise ExportError(f"real crops have shape {real.shape[1:]}, expected (3, {h}, {w})")
        if not dynamic_batch and len(real) < batch:
            real = np.concatenate([real] * (batch // len(real) + 1))[:batch]
        diff, scale = _max_abs_diff(deployed, session, _batches(real, 0 if dynamic_batch else batch))
        result["max_abs_diff_real"], result["max_abs_output_real"] = diff, scale
    return result
