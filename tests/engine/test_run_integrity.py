"""`slimpose train` and `eval` keep a user's run whole: what each defect of the careful
user's audit (issue 29) did, driven through the command line in a subprocess."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from slimpose.data.synthetic import generate_synthetic_coco

from engine_testdata import small_config

FAULTRUN = Path(__file__).parents[1] / "faultrun.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def slimpose(*args, fault=()):
    command = [sys.executable, str(FAULTRUN), *fault, "--"] if fault else [sys.executable, "-m", "slimpose"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=300, env=ENV)


def one_error_line(done) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return generate_synthetic_coco(tmp_path_factory.mktemp("synth"), 12, 4, seed=3)


@pytest.fixture(scope="module")
def config_file(synth, tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(yaml.safe_dump(small_config(synth, epochs=1)))
    return path


@pytest.fixture(scope="module")
def finished_run(config_file, tmp_path_factory):
    """A finished one-epoch run, copied by each test that changes it."""
    work_dir = tmp_path_factory.mktemp("finished") / "run"
    done = slimpose("train", config_file, "--work-dir", work_dir)
    assert done.returncode == 0, done.stderr
    return work_dir


@pytest.fixture
def run(finished_run, tmp_path):
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def model_weights(path):
    return torch.load(path, weights_only=True)["model"]


def logged_epochs(work_dir):
    return [json.loads(line)["epoch"] for line in (work_dir / "log.jsonl").read_text().splitlines()]


def test_a_diverging_loss_stops_the_run_before_it_overwrites_the_good_checkpoint(run):
    good = model_weights(run / "last.pth")
    # Validation every 2nd epoch: epoch 2 would be saved unvalidated, as the audit's run was.
    done = slimpose("train", "--resume", run, "--override-saved-config",
                    "--set", "train.epochs=3", "train.lr=1e6", "train.val_interval=2")
    line = one_error_line(done)
    assert "diverged" in line and "last.pth is intact" in line
    kept = model_weights(run / "last.pth")
    assert all(torch.equal(kept[k], good[k]) for k in good)


@pytest.mark.parametrize("damage, problem", [
    (lambda text: "", "the file is empty"),
    (lambda text: text[:text.index("\ntrain:")], "train, test missing: the file is incomplete"),
])
def test_an_empty_or_cut_config_yaml_is_refused_not_read_as_the_defaults(run, damage, problem):
    path = run / "config.yaml"
    path.write_text(damage(path.read_text()))
    line = one_error_line(slimpose("train", "--resume", run))
    assert str(path) in line and problem in line and "delete it to resume with the config stored in last.pth" in line
    assert logged_epochs(run) == [1]


def test_a_config_yaml_that_differs_from_the_checkpoints_is_refused(run):
    path = run / "config.yaml"
    path.write_text(path.read_text().replace("lr: 0.001", "lr: 0.5"))
    line = one_error_line(slimpose("train", "--resume", run, "--set", "train.epochs=2"))
    assert "differs from the config stored in" in line and "train.lr: saved 0.001, given 0.5" in line


def test_config_yaml_is_written_whole_or_not_at_all(run):
    before = (run / "config.yaml").read_text()
    done = slimpose("train", "--resume", run, "--set", "train.epochs=2", "--override-saved-config",
                    fault=("disk-full", "config", "1"))
    assert "No space left on device" in one_error_line(done)
    assert (run / "config.yaml").read_text() == before
    assert slimpose("train", "--resume", run).returncode == 0  # as saved: finished, nothing to do


def test_a_failed_override_resume_leaves_config_yaml_in_place(run):
    before = (run / "config.yaml").read_text()
    line = one_error_line(slimpose("train", "--resume", run, "--override-saved-config",
                                   "--set", "train.epochs=2", "model.kwargs.width=16"))
    assert "does not fit model" in line
    assert (run / "config.yaml").is_file() and (run / "config.yaml").read_text() == before
    assert sorted(p.name for p in run.glob("config*")) == ["config.yaml"]


def test_a_kill_between_last_and_best_loses_no_best_checkpoint(config_file, tmp_path):
    work_dir = tmp_path / "run"
    # Validated only at the end: epoch 2 improves, its best.pth is written after its last.pth.
    args = ("train", config_file, "--work-dir", work_dir, "--resume", "--set", "train.epochs=2",
            "train.val_interval=0")
    killed = slimpose(*args, fault=("kill-after-replace", "last.pth", "2"))
    assert killed.returncode < 0
    assert slimpose(*args).returncode == 0
    assert (work_dir / "best.pth").is_file()
    assert torch.load(work_dir / "best.pth", weights_only=True)["epoch"] == 2


def test_a_kill_before_the_log_is_written_loses_no_epoch_of_it(config_file, tmp_path):
    work_dir = tmp_path / "run"
    args = ("train", config_file, "--work-dir", work_dir, "--resume", "--set", "train.epochs=2")
    assert slimpose(*args, fault=("kill-after-replace", "last.pth", "1")).returncode < 0
    assert slimpose(*args).returncode == 0
    assert logged_epochs(work_dir) == [1, 2]


def test_a_kill_after_the_final_checkpoint_still_leaves_a_summary(config_file, tmp_path):
    work_dir = tmp_path / "run"
    args = ("train", config_file, "--work-dir", work_dir, "--resume")
    assert slimpose(*args, fault=("kill-after-replace", "last.pth", "1")).returncode < 0
    assert not (work_dir / "summary.json").exists()
    done = slimpose(*args)
    assert done.returncode == 0 and "the run is finished" in done.stdout
    assert (work_dir / "summary.json").is_file()
    assert json.loads((work_dir / "summary.json").read_text())["best_epoch"] == 1


def test_a_bad_image_read_in_a_loader_worker_is_one_line(synth, tmp_path):
    images = Path(shutil.copytree(synth["train_images"], tmp_path / "images"))
    for image in images.iterdir():  # whichever the first batch holds
        image.write_bytes(b"not an image")
    cfg = small_config({**synth, "train_images": images}, epochs=1)
    cfg["data"]["workers"] = 1
    path = tmp_path / "workers.yaml"
    path.write_text(yaml.safe_dump(cfg))
    line = one_error_line(slimpose("train", path, "--work-dir", tmp_path / "run"))
    assert f"{images}/" in line and ": image: cannot be decoded as an image" in line


def test_eval_out_that_is_a_folder_is_one_line(run, tmp_path):
    line = one_error_line(slimpose("eval", "--checkpoint", run / "last.pth", "--out", tmp_path))
    assert f"{tmp_path}: is a folder" in line


def test_temporary_files_of_a_killed_writer_go_on_resume_and_on_overwrite(run, config_file):
    for folder in (run, run / "val_predictions"):
        (folder / ".last.k3j9x0ab.tmp.pth").write_bytes(b"half")
    (run / "notes.tmp").write_text("the user's")
    assert slimpose("train", "--resume", run).returncode == 0
    assert not list(run.rglob(".*.tmp*")) and (run / "notes.tmp").exists()
    (run / ".log.abcdefgh.tmp.jsonl").write_text("half")
    assert slimpose("train", config_file, "--work-dir", run, "--overwrite").returncode == 0
    assert not list(run.rglob(".*.tmp*"))


def _flip_a_weight_byte(path):
    """One bit of the largest tensor's stored bytes, leaving the zip readable."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    header = info.header_offset
    name_len = int.from_bytes(data[header + 26:header + 28], "little")
    extra_len = int.from_bytes(data[header + 28:header + 30], "little")
    data[header + 30 + name_len + extra_len + info.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_flipped_bit_in_a_checkpoints_weights_is_refused(run, tmp_path):
    _flip_a_weight_byte(run / "last.pth")
    line = one_error_line(slimpose("eval", "--checkpoint", run / "last.pth", "--out", tmp_path / "m.json"))
    assert "the weights do not match the digest stored with them" in line


def test_a_run_folder_of_the_previous_version_resumes(synth, tmp_path):
    """slimpose 0.1.0 kept the pooled-RLE head's options as nine train.* fields in
    config.yaml and in last.pth's stored config; such a half-finished run resumes, its
    values read as model.head's."""
    from slimpose.engine.checkpoint import load_checkpoint, save_checkpoint

    cfg = small_config(synth, epochs=2, val_interval=0, max_iters_per_epoch=1)
    cfg["model"] = {"name": "repnet_a", "kwargs": {"init_std": 0.001}, "head": {"dense_weight": 10.0}}
    cfg["data"]["input_size"] = [64, 64]
    config = tmp_path / "repnet.yaml"
    config.write_text(yaml.safe_dump({**cfg, "train": {**cfg["train"], "epochs": 1}}))
    work_dir = tmp_path / "run"
    assert slimpose("train", config, "--work-dir", work_dir).returncode == 0

    def as_written_by_0_1_0(saved: dict) -> dict:
        old = {**saved, "model": {k: v for k, v in saved["model"].items() if k != "head"}}
        old["train"] = {**saved["train"], "epochs": 2, "decomposed_regression_weight": 10.0,
                        "decomposed_regression_sigma": 1.0, "decomposed_regression_target": "gaussian",
                        "decomposed_regression_norm": "mse", "decomposed_regression_teacher": "ground_truth",
                        "auxiliary_heatmap_weight": 0.0, "head_refit_crops": 0, "head_refit_ridge": 1.0,
                        "head_refit_huber": 0.05}
        return old

    written = yaml.safe_load((work_dir / "config.yaml").read_text())
    (work_dir / "config.yaml").write_text(yaml.safe_dump(as_written_by_0_1_0(written), sort_keys=False))
    last = load_checkpoint(work_dir / "last.pth")
    save_checkpoint({**last, "config": as_written_by_0_1_0(last["config"])}, work_dir / "last.pth")
    done = slimpose("train", "--resume", work_dir)
    assert done.returncode == 0, done.stderr
    assert "resumed from" in done.stdout and "epoch 2/2" in done.stdout
    resumed = yaml.safe_load((work_dir / "config.yaml").read_text())
    assert resumed["model"]["head"] == {"dense_weight": 10.0} and "decomposed_regression_weight" not in resumed["train"]
