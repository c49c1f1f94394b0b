"""An ONNX file is untrusted input: metadata nested thousands of levels deep, or an input
size that makes the runtime allocate gigabytes, is one line naming the file and the
metadata field, never a RecursionError traceback or a huge allocation (issue 29).

Tiny graphs (one 1x1 strided Conv) built with the onnx helper API, whose static shapes
declare what the metadata says; none of them is ever run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from slimpose.codecs import HeatmapCodec
from slimpose.deploy.runtime import OnnxPoseEstimator, PoseModelMetadata, RuntimeModelError, read_onnx_metadata
from slimpose.keypoints import COCO17

K = COCO17.num_keypoints
STRIDE = 4


def _write_model(path, input_hw: tuple[int, int], **field_texts: str):
    """A valid slimpose export of input (1, 3, H, W) whose metadata fields are replaced by
    the given JSON texts."""
    heatmap_hw = (input_hw[0] // STRIDE, input_hw[1] // STRIDE)
    node = helper.make_node("Conv", ["input", "w"], ["output"], kernel_shape=[1, 1], strides=[STRIDE, STRIDE])
    graph = helper.make_graph(
        [node], "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, *input_hw])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, K, *heatmap_hw])],
        [numpy_helper.from_array(np.full((K, 3, 1, 1), 0.01, np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    meta = PoseModelMetadata(model_name="tiny", input_size=input_hw, mean=(1.0, 2.0, 3.0), std=(4.0, 5.0, 6.0),
                             color_order="RGB", box_padding=1.25, layout=COCO17,
                             flip_index=tuple(COCO17.flip_index),
                             codec=HeatmapCodec(input_hw, heatmap_size=heatmap_hw), output_shape=(K, *heatmap_hw))
    for key, value in {**meta.to_props(), **field_texts}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_a_small_valid_file_loads(tmp_path):
    assert read_onnx_metadata(_write_model(tmp_path / "ok.onnx", (8, 8))).input_size == (8, 8)


@pytest.mark.parametrize("field", ["mean", "comment"])  # a field the runtime reads, and one it keeps as extra
@pytest.mark.parametrize("depth", [100, 100_000])  # within Python's recursion limit, and far beyond it
def test_deeply_nested_metadata_is_one_error_naming_the_field(tmp_path, field, depth):
    path = _write_model(tmp_path / "deep.onnx", (8, 8), **{field: _nested(depth)})
    for load in (read_onnx_metadata, OnnxPoseEstimator):
        with pytest.raises(RuntimeModelError) as err:
            load(path)
        message = str(err.value)
        assert str(path) in message and repr(field) in message and "nested more than" in message, message


def test_deeply_nested_metadata_through_the_cli(tmp_path):
    path = _write_model(tmp_path / "deep.onnx", (8, 8), layout=_nested(100_000))
    image = tmp_path / "person.png"
    cv2.imwrite(str(image), np.zeros((40, 30, 3), np.uint8))
    result = subprocess.run([sys.executable, "-m", "slimpose", "infer", str(path), str(image), "--out",
                             str(tmp_path / "out"), "--no-draw"], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    err = result.stderr.strip()
    assert result.returncode == 2 and "Traceback" not in err and len(err.splitlines()) == 1, (result.returncode, err)
    assert str(path) in err and "'layout'" in err, err


@pytest.mark.parametrize("input_hw", [(16000, 12000), (256, 8192)])
def test_an_input_size_beyond_the_bound_is_refused_when_opened(tmp_path, input_hw):
    path = _write_model(tmp_path / "huge.onnx", input_hw)
    for load in (read_onnx_metadata, OnnxPoseEstimator):
        with pytest.raises(RuntimeModelError, match="'input_size'.*exceeds 4096 pixels a side") as err:
            load(path)
        assert str(path) in str(err.value)


def test_the_largest_allowed_input_size_opens(tmp_path):
    path = _write_model(tmp_path / "big.onnx", (4096, 4096))
    assert read_onnx_metadata(path).input_size == (4096, 4096)


def test_an_input_size_declared_only_in_the_metadata_is_checked(tmp_path):
    # the metadata alone may declare the size when the graph's dimensions are dynamic
    path = _write_model(tmp_path / "dyn.onnx", (8, 8), input_size=json.dumps([16000, 12000]))
    model = onnx.load(str(path))
    for dim in model.graph.input[0].type.tensor_type.shape.dim[2:]:
        dim.dim_param = "side"
    onnx.save(model, str(path))
    with pytest.raises(RuntimeModelError, match="'input_size'.*exceeds"):
        OnnxPoseEstimator(path)


# --------------------------------------------------------------------------- slimpose bench


def _with_dynamic_sides(path):
    model = onnx.load(str(path))
    for dim in model.graph.input[0].type.tensor_type.shape.dim[2:]:
        dim.dim_param = "side"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("input_hw, side", [((16000, 12000), "H = 16000"), ((256, 8192), "W = 8192"),
                                            ((8, -5), "W = -5")])
def test_bench_refuses_a_declared_input_beyond_the_bound_before_building_it(tmp_path, input_hw, side):
    from slimpose.deploy.benchmark import benchmark
    from slimpose.errors import SlimposeError

    path = tmp_path / "huge.onnx"
    _write_model(path, (8, 8))
    model = onnx.load(str(path))  # the graph declares the size; bench times the graph, not the metadata
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim[2:], input_hw):
        dim.dim_value = value
    onnx.save(model, str(path))
    with pytest.raises(SlimposeError, match=f"input 'input' shape .*{side} is outside 1..4096") as err:
        benchmark([str(path)], backends=("onnxruntime",), threads=1, warmup=0, iters=1, rounds=1)
    assert str(path) in str(err.value)


def test_bench_takes_dynamic_sides_from_the_metadata_and_bounds_them(tmp_path):
    from slimpose.deploy.benchmark import onnx_input_size
    from slimpose.errors import SlimposeError

    assert onnx_input_size(_write_model(tmp_path / "big.onnx", (4096, 4096))) == (4096, 4096)  # the bound itself
    assert onnx_input_size(_with_dynamic_sides(_write_model(tmp_path / "dyn.onnx", (8, 8)))) == (8, 8)
    huge = _with_dynamic_sides(_write_model(tmp_path / "dyn_huge.onnx", (8, 8), input_size=json.dumps([16000, 8])))
    with pytest.raises(RuntimeModelError, match="'input_size'.*exceeds 4096") as err:
        onnx_input_size(huge)
    assert str(huge) in str(err.value)
    # without slimpose metadata nothing says what size to build: refused, not guessed
    bare = onnx.load(str(huge))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(SlimposeError, match=r"bare.onnx: the input must be .* fixed H and W .*'side'"):
        onnx_input_size(tmp_path / "bare.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\xff" * 64)
    with pytest.raises(SlimposeError, match="junk.onnx: not a readable ONNX model"):
        onnx_input_size(tmp_path / "junk.onnx")


def test_bench_cli_on_a_hostile_file_is_one_line(tmp_path):
    path = _write_model(tmp_path / "huge.onnx", (8, 8))
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 100_000
    onnx.save(model, str(path))
    result = subprocess.run([sys.executable, "-m", "slimpose", "bench", str(path), "--backend", "onnxruntime",
                             "--warmup", "0", "--iters", "1", "--threads", "1"], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    err = result.stderr.strip()
    lines = [line for line in err.splitlines() if not line.startswith("note:")]  # e.g. a busy machine's load
    assert result.returncode == 2 and "Traceback" not in err and len(lines) == 1, (result.returncode, err)
    assert str(path) in lines[0] and "H = 100000" in lines[0], err
