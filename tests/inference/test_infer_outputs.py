"""What ``slimpose infer`` leaves in --out can be trusted: a stopped or killed run keeps
whole results of the images it did, an earlier run's files are never silently replaced
or left beside new ones, and every source image gets its own drawing.

All through the command line in a subprocess, as a user (or ``timeout``, ``docker stop``,
systemd) runs it."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from infer_testdata import ENV, INFER, infer_cli, write_images

MANY = 200  # more images than a run gets ahead of the test (see started_run)


def drawn_images(out) -> set[str]:
    """Source names of the drawings in ``out`` (``a.png_pose.jpg`` -> ``a.png``)."""
    return {p.name[:-len("_pose.jpg")] for p in out.glob("*_pose.jpg")}


def one_line_error(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def started_run(tiny_onnx, folder, out, stderr_path) -> subprocess.Popen:
    """``infer`` on ``folder`` in the background, returned once it has printed 3 images.

    It cannot finish before the test stops it, however fast the machine: its stdout is an
    unbuffered pipe of one page that the test does not read, so it blocks some tens of
    images later until the test drains the pipe."""
    fcntl = pytest.importorskip("fcntl")
    if not hasattr(fcntl, "F_SETPIPE_SZ"):
        pytest.skip("needs Linux pipes (F_SETPIPE_SZ)")
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen([*INFER, str(tiny_onnx), str(folder), "--out", str(out), "--threads", "1"],
                                stdout=subprocess.PIPE, stderr=stderr, text=True,
                                env={**ENV, "PYTHONUNBUFFERED": "1"})
    fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, 4096)
    for _ in range(3):
        assert proc.stdout.readline(), f"infer ended before it was stopped: {stderr_path.read_text()}"
    return proc


@pytest.fixture(scope="module")
def many_images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("many"), [f"im{i:03d}.png" for i in range(MANY)])


def test_sigterm_stops_after_the_current_image_and_writes_its_results(tiny_onnx, many_images, tmp_path):
    out, stderr = tmp_path / "out", tmp_path / "stderr.txt"
    proc = started_run(tiny_onnx, many_images, out, stderr)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr.read_text()
    results = json.loads((out / "results.json").read_text())
    done = {r["image_id"] for r in results}
    assert done == drawn_images(out) and 3 <= len(done) < MANY  # the current image finished, no more
    last_line = stderr.read_text().strip().splitlines()[-1]
    assert f"stopped by SIGTERM after {len(done)} of {MANY} images" in last_line, last_line
    assert json.loads((out / "infer_run.json").read_text())["status"].startswith("stopped by SIGTERM")


def test_a_killed_run_leaves_whole_results_and_says_it_did_not_finish(tiny_onnx, many_images, tmp_path):
    out = tmp_path / "out"
    proc = started_run(tiny_onnx, many_images, out, tmp_path / "stderr.txt")
    proc.kill()  # SIGKILL: no handler runs, only what is on disk counts
    proc.communicate(timeout=120)
    assert (out / "results.json").is_file(), sorted(p.name for p in out.iterdir())[:5]
    results = json.loads((out / "results.json").read_text())  # whole, never half-written
    done = {r["image_id"] for r in results}
    assert done and done <= drawn_images(out)
    record = json.loads((out / "infer_run.json").read_text())
    assert record["status"] == "running" and "results.json" in record["outputs"]


def test_an_out_that_is_a_file_is_one_line_error(tiny_onnx, tmp_path):
    image = write_images(tmp_path / "in", ["a.png"]) / "a.png"
    taken = tmp_path / "taken"
    taken.write_text("a user's file")
    err = one_line_error(infer_cli(tiny_onnx, image, "--out", taken))
    assert f"{taken}: --out: is a file" in err
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
