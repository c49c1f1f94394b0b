"""slimpose.io: outputs appear whole or not at all."""

from __future__ import annotations

import json
import os
import stat

import pytest

from slimpose.io import atomic_path, atomic_write, write_json_atomic


def _leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_atomic_write_replaces_the_file_at_the_end(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_write(target) as f:
        f.write("new")
        assert not target.exists(), "the target must not appear before the block ends"
    assert target.read_text() == "new"
    assert _leftovers(target.parent, {"out.txt"}) == []


def test_failure_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "wb") as f:
            f.write(b"half a mod")
            raise RuntimeError("check failed")
    assert target.read_bytes() == b"previous"
    assert _leftovers(tmp_path, {"model.onnx"}) == []


def test_atomic_path_keeps_the_suffix_and_gives_ordinary_permissions(tmp_path):
    target = tmp_path / "q.onnx"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".onnx" and tmp != target
        tmp.write_bytes(b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


def test_write_json_atomic_does_not_touch_the_file_for_unserialisable_data(tmp_path):
    target = tmp_path / "metrics.json"
    write_json_atomic(target, {"AP": 0.5})
    assert json.loads(target.read_text()) == {"AP": 0.5} and target.read_text().endswith("\n")
    with pytest.raises(TypeError):
        write_json_atomic(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"AP": 0.5}
    assert _leftovers(tmp_path, {"metrics.json"}) == []
