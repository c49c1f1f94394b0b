"""The runtime's metadata validation: a bad ONNX file is one RuntimeModelError naming
the file and the field, never a raw numpy / onnxruntime / KeyError traceback. And one
normalisation per model: the training pipeline (registry ModelInfo) and the runtime
(file metadata) build the same network input.

Tiny graphs (one strided Conv: 8x8 input, 2x2 heatmaps) built with the onnx helper API,
with slimpose metadata that is valid except for the one field each case breaks.
"""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from slimpose.codecs import CoordinateCodec, HeatmapCodec
from slimpose.config import AugmentConfig
from slimpose.data import dataset as dataset_module
from slimpose.data.transforms import BOX_PADDING, NormalizeImage, box_to_center_scale, build_pipeline
from slimpose.deploy.runtime import OnnxPoseEstimator, PoseModelMetadata, RuntimeModelError, read_onnx_metadata
from slimpose.keypoints import COCO17, LSP14
from slimpose.models.registry import ModelInfo, get_model_entry

SIZE = (8, 8)
K = COCO17.num_keypoints


def _graph(input_hw=SIZE, out_hw=(2, 2)) -> onnx.ModelProto:
    """input (1, 3, H, W) -> Conv k=s=H/out_h -> output (1, K, out_h, out_w)."""
    kh, kw = input_hw[0] // out_hw[0], input_hw[1] // out_hw[1]
    weight = numpy_helper.from_array(np.full((K, 3, kh, kw), 0.01, np.float32), "w")
    node = helper.make_node("Conv", ["input", "w"], ["output"], kernel_shape=[kh, kw], strides=[kh, kw])
    graph = helper.make_graph(
        [node], "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, *input_hw])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, K, *out_hw])], [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _valid_fields() -> dict:
    codec = HeatmapCodec(SIZE, heatmap_size=(2, 2))
    meta = PoseModelMetadata(model_name="tiny", input_size=SIZE, mean=(1.0, 2.0, 3.0), std=(4.0, 5.0, 6.0),
                             color_order="RGB", box_padding=1.25, layout=COCO17,
                             flip_index=tuple(COCO17.flip_index), codec=codec, output_shape=(K, 2, 2))
    return meta.to_fields()


def _write(tmp_path, props: dict[str, str], model: onnx.ModelProto | None = None):
    model = model or _graph()
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    return path


def _props(fields: dict) -> dict[str, str]:
    return {k: json.dumps(v) for k, v in fields.items()}


def test_valid_file_loads_and_runs(tmp_path):
    path = _write(tmp_path, _props(_valid_fields()))
    meta = read_onnx_metadata(path)
    assert meta.output_kind == "heatmap" and meta.input_size == SIZE and meta.mean == (1.0, 2.0, 3.0)
    est = OnnxPoseEstimator(path, threads=1)
    kpts, scores = est(np.zeros((20, 30, 3), np.uint8), [[2, 2, 10, 10]], flip=True)
    assert kpts.shape == (1, K, 2) and scores.shape == (1, K)


def _set(**changes):
    def change(fields):
        fields.update(changes)
    return change


def _drop(name):
    def change(fields):
        del fields[name]
    return change


BROKEN = {
    # case: (change to the fields, the field the error must name)
    "mean not a list": (_set(mean="imagenet"), "mean"),
    "mean of strings": (_set(mean=["1", "2", "3"]), "mean"),
    "short mean": (_set(mean=[1.0, 2.0]), "mean"),
    "short std": (_set(std=[58.4]), "std"),
    "zero std": (_set(std=[1.0, 0.0, 1.0]), "std"),
    "NaN-free std as bools": (_set(std=[True, True, True]), "std"),
    "flip index out of range": (_set(flip_index=list(range(K - 1)) + [K]), "flip_index"),
    "negative flip index": (_set(flip_index=[-1] + list(range(1, K))), "flip_index"),
    "flip index repeats a joint": (_set(flip_index=[0] * K), "flip_index"),
    "flip index too short": (_set(flip_index=list(range(K - 2))), "flip_index"),
    "flip index of floats": (_set(flip_index=[float(i) for i in range(K)]), "flip_index"),
    "input size not the graph's": (_set(input_size=[16, 16]), "input_size"),
    "input size as text": (_set(input_size="8x8"), "input_size"),
    "input size of floats": (_set(input_size=[8.0, 8.0]), "input_size"),
    "unknown decoding": (_set(decode="bilinear"), "decode"),
    "decoding not a string": (_set(decode=3), "decode"),
    "unknown output kind": (_set(output_kind="segmentation"), "output_kind"),
    "output kind a list": (_set(output_kind=["heatmap"]), "output_kind"),
    "sigma as text": (_set(sigma="2"), "sigma"),
    "negative beta": (_set(beta=-1.0), "beta"),
    "heatmap size not the output's": (_set(heatmap_size=[3, 3]), "output_shape"),
    "output shape with other K": (_set(output_shape=[14, 2, 2]), "output_shape"),
    "output shape not a list": (_set(output_shape=17), "output_shape"),
    "unknown colour order": (_set(color_order="YUV"), "color_order"),
    "box padding negative": (_set(box_padding=-1.25), "box_padding"),
    "dynamic batch as text": (_set(dynamic_batch="yes"), "dynamic_batch"),
    "layout without names": (_set(layout={"name": "x"}), "layout"),
    "layout a list": (_set(layout=[1, 2]), "layout"),
    "layout with text sigmas": (_set(layout={**COCO17.to_dict(), "sigmas": ["a"] * K}), "layout"),
    "layout with other K": (_set(layout=LSP14.to_dict()), "num_keypoints"),
    "num keypoints disagrees": (_set(num_keypoints=5), "num_keypoints"),
    "model name a number": (_set(model_name=7), "model_name"),
    "NCHW replaced": (_set(input_layout="NHWC"), "input_layout"),
    "pixel range 0-1": (_set(pixel_range="0-1"), "pixel_range"),
    "weights not an object": (_set(weights="/home/me/best.pth"), "weights"),
    **{f"missing {name}": (_drop(name), name) for name in (
        "model_name", "input_size", "mean", "std", "color_order", "box_padding", "layout", "flip_index",
        "output_kind", "output_shape", "dynamic_batch", "decode", "sigma", "beta", "heatmap_size", "flip_shift",
        "input_layout", "pixel_range")},
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_metadata_is_one_runtime_model_error(tmp_path, case):
    change, field = BROKEN[case]
    fields = _valid_fields()
    change(fields)
    path = _write(tmp_path, _props(fields))
    for load in (read_onnx_metadata, OnnxPoseEstimator):
        with pytest.raises(RuntimeModelError) as err:
            load(path)
        message = str(err.value)
        assert str(path) in message and repr(field) in message, message
        assert "\n" not in message


def test_value_that_is_not_json(tmp_path):
    props = _props(_valid_fields())
    props["mean"] = "[1, 2,"
    with pytest.raises(RuntimeModelError, match="'mean'.*not a JSON value"):
        OnnxPoseEstimator(_write(tmp_path, props))


def test_onnx_without_slimpose_metadata(tmp_path):
    with pytest.raises(RuntimeModelError, match="not a slimpose export"):
        OnnxPoseEstimator(_write(tmp_path, {}))


def test_not_an_onnx_file_and_missing_file(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not onnx")
    with pytest.raises(RuntimeModelError, match="cannot be loaded"):
        OnnxPoseEstimator(junk)
    with pytest.raises(RuntimeModelError, match="not found"):
        read_onnx_metadata(tmp_path / "absent.onnx")


def test_graph_input_with_other_channels_is_rejected(tmp_path):
    model = _graph()
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 1
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.zeros((K, 1, 4, 4), np.float32), "w"))
    with pytest.raises(RuntimeModelError, match="'input_size'.*expected \\[N, 3, 8, 8\\]"):
        read_onnx_metadata(_write(tmp_path, _props(_valid_fields()), model))


def test_coordinate_metadata_and_decode_override(tmp_path):
    fields = _valid_fields()
    path = _write(tmp_path, _props(fields))
    assert OnnxPoseEstimator(path, decode="dark").codec.decode_method == "dark"
    with pytest.raises(RuntimeModelError, match="'decode'"):
        OnnxPoseEstimator(path, decode="nearest")
    coord = CoordinateCodec(SIZE)
    assert coord.output_shape_problem((1, K, 4), K) is None and coord.output_shape_problem((1, K, 3), K)


def test_unknown_fields_are_kept_as_extra(tmp_path):
    fields = _valid_fields() | {"quantization": {"format": "QDQ"}}
    meta = read_onnx_metadata(_write(tmp_path, _props(fields)))
    assert meta.extra == {"quantization": {"format": "QDQ"}}
    assert meta.to_fields() == fields


# --------------------------------------------------------------------------- normalisation

OTHER = ModelInfo(mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 8.0), color_order="BGR")


def test_pipeline_and_runtime_make_the_same_input_for_a_non_imagenet_model(tmp_path):
    fields = _valid_fields() | {"mean": list(OTHER.mean), "std": list(OTHER.std), "color_order": "BGR"}
    est = OnnxPoseEstimator(_write(tmp_path, {k: json.dumps(v) for k, v in fields.items()}))
    image = np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8)
    box = [3.0, 5.0, 20.0, 28.0]
    runtime_input, centers, scales = est.preprocess(image, [box])

    center, scale = box_to_center_scale(box, SIZE[1] / SIZE[0], BOX_PADDING)
    pipeline = build_pipeline(AugmentConfig(), COCO17, SIZE, train=False,
                              normalization=NormalizeImage(OTHER.mean, OTHER.std, to_rgb=False))
    results = pipeline({"image": image, "center": center, "scale": scale, "rotation": 0.0,
                        "keypoints": np.zeros((17, 2)), "visible": np.zeros(17, np.float32), "flipped": False})
    # two code paths over values up to ~120 (mean 10, std 2): ~8 float32 ulps of the largest
    np.testing.assert_allclose(results["image"], runtime_input[0], atol=1e-6 * np.abs(runtime_input).max())
    np.testing.assert_allclose(centers[0], center)
    np.testing.assert_allclose(scales[0], scale)


def test_build_dataset_normalises_with_the_model_info(monkeypatch):
    entry = get_model_entry("tinypose")
    monkeypatch.setattr(dataset_module, "get_model_entry", lambda name: replace(entry, info=OTHER))
    seen = {}

    def fake_pipeline(*args, normalization=None, **kwargs):
        seen["normalization"] = normalization
        return SimpleNamespace(transforms=[])

    monkeypatch.setattr(dataset_module, "build_pipeline", fake_pipeline)
    monkeypatch.setattr(dataset_module, "build_source", lambda *a, **k: SimpleNamespace(instances=[]))
    cfg = SimpleNamespace(model=SimpleNamespace(name="tinypose"), train=SimpleNamespace(seed=0),
                          data=SimpleNamespace(val=None, layout="coco", input_size=list(SIZE), augment=AugmentConfig()))
    dataset_module.build_dataset(cfg, "val", codec=None)
    norm = seen["normalization"]
    assert (norm.mean, norm.std, norm.to_rgb) == (OTHER.mean, OTHER.std, False)
