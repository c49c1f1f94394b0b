"""What ``slimpose infer`` leaves in --out can be trusted: an earlier run's files are never
silently replaced or left beside new ones, and every source image gets its own drawing.
(A run stopped by SIGTERM or killed with SIGKILL: tests/test_fault_injection.py.)

All through the command line in a subprocess, as a user (or ``timeout``, ``docker stop``,
systemd) runs it."""

from __future__ import annotations

import json

from infer_testdata import infer_cli, write_images


def one_line_error(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_an_out_that_is_a_file_is_one_line_error(tiny_onnx, tmp_path):
    image = write_images(tmp_path / "in", ["a.png"]) / "a.png"
    taken = tmp_path / "taken"
    taken.write_text("a user's file")
    err = one_line_error(infer_cli(tiny_onnx, image, "--out", taken))
    assert f"--out {taken}: is a file" in err and "give a folder name" in err
    assert taken.read_text() == "a user's file"


def test_an_out_inside_the_source_folder_is_refused(tiny_onnx, tmp_path):
    folder = write_images(tmp_path / "photos", ["a.png", "b.png"])
    for out in (folder, folder / "drawings"):
        err = one_line_error(infer_cli(tiny_onnx, folder, "--out", out))
        assert f"{out}: --out: lies inside the source folder" in err
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "b.png"]


def test_a_used_out_is_refused_and_overwrite_replaces_only_the_earlier_runs_files(tiny_onnx, tmp_path):
    first = write_images(tmp_path / "first", ["a.png", "b.png"])
    second = write_images(tmp_path / "second", ["c.png"])
    out = tmp_path / "out"
    assert infer_cli(tiny_onnx, first, "--out", out).returncode == 0
    (out / "notes.txt").write_text("the user's own file")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    err = one_line_error(infer_cli(tiny_onnx, second, "--out", out))
    assert "already holds the outputs of an earlier infer run" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing replaced

    proc = infer_cli(tiny_onnx, second, "--out", out, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["c.png_pose.jpg", "infer_run.json", "notes.txt", "results.json"]
    assert {r["image_id"] for r in json.loads((out / "results.json").read_text())} == {"c.png"}
    assert json.loads((out / "infer_run.json").read_text())["status"] == "finished"


def test_images_with_one_stem_get_one_drawing_each(tiny_onnx, tmp_path):
    folder = write_images(tmp_path / "photos", ["a.jpg", "a.png"])
    out = tmp_path / "out"
    proc = infer_cli(tiny_onnx, folder, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.glob("*_pose.jpg")) == ["a.jpg_pose.jpg", "a.png_pose.jpg"]
