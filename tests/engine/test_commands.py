"""`slimpose train` / `slimpose eval` as a user drives them: resume keeps the run's
config, a finished or existing run is not clobbered, Ctrl-C says how to continue, one
human line per epoch, eval writes where it says, bad config values fail in one line."""

import json

import pytest
import yaml

from slimpose.cli import main as cli_main
from slimpose.config import TrainConfig, load_config
from slimpose.data.synthetic import generate_synthetic_coco
from slimpose.engine.checkpoint import load_checkpoint
from slimpose.engine.progress import EpochReport, epochs_left
from slimpose.engine.train import Trainer

from engine_testdata import small_config


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return generate_synthetic_coco(tmp_path_factory.mktemp("synth"), 12, 4, seed=3)


@pytest.fixture
def config_file(synth, tmp_path):
    cfg = small_config(synth, deterministic=False)
    path = tmp_path / "tinypose_synthetic_64x48.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def log_records(work_dir):
    return [json.loads(line) for line in (work_dir / "log.jsonl").read_text().splitlines()]


def interrupt_at_epoch(monkeypatch, epoch_index):
    """Make Ctrl-C arrive at the start of the given (0-based) epoch."""
    original = Trainer._train_epoch

    def train_epoch(self):
        if self.state.epoch == epoch_index:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "_train_epoch", train_epoch)


def test_ctrl_c_prints_the_resume_command_and_resume_alone_keeps_the_runs_config(config_file, tmp_path,
                                                                                  monkeypatch, capsys):
    run = tmp_path / "run"
    interrupt_at_epoch(monkeypatch, 1)
    argv = ["train", str(config_file), "--work-dir", str(run), "--set", "train.epochs=3", "train.lr=5e-4"]
    assert cli_main(argv) == 130
    assert f"slimpose train --resume {run}" in capsys.readouterr().err
    monkeypatch.undo()

    assert cli_main(["train", "--resume", str(run)]) == 0
    records = log_records(run)
    assert [r["epoch"] for r in records] == [1, 2, 3]  # the --set epochs, not the YAML's 2
    assert records[0]["lr"] == pytest.approx(5e-4) and records[1]["lr"] == pytest.approx(5e-5)
    saved = load_checkpoint(run / "last.pth")["config"]["train"]
    assert (saved["epochs"], saved["lr"]) == (3, 5e-4)
    assert load_config(run / "config.yaml").train.epochs == 3


def test_resume_with_a_differing_config_is_refused_then_applied_with_the_flag(config_file, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli_main(["train", str(config_file), "--work-dir", str(run), "--set", "train.epochs=1"]) == 0
    before = (run / "config.yaml").read_text()
    capsys.readouterr()

    assert cli_main(["train", str(config_file), "--work-dir", str(run), "--resume", "--set", "train.lr=2e-3"]) == 2
    err = capsys.readouterr().err
    assert "train.epochs: saved 1, given 2" in err and "train.lr: saved 0.001, given 0.002" in err
    assert "--override-saved-config" in err and len(err.strip().splitlines()) == 1
    assert (run / "config.yaml").read_text() == before and len(log_records(run)) == 1

    assert cli_main(["train", "--resume", str(run), "--set", "train.epochs=2", "--override-saved-config"]) == 0
    assert "the resumed run changes train.epochs: saved 1, given 2" in capsys.readouterr().out
    assert [r["epoch"] for r in log_records(run)] == [1, 2]
    assert (run / "config.until_epoch1.yaml").read_text() == before
    assert load_config(run / "config.yaml").train.epochs == 2


def test_resuming_a_finished_run_has_nothing_to_do(config_file, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli_main(["train", str(config_file), "--work-dir", str(run), "--set", "train.epochs=1"]) == 0
    capsys.readouterr()
    assert cli_main(["train", "--resume", str(run)]) == 0
    assert "the run is finished (epoch 1/1); nothing to do" in capsys.readouterr().out
    assert len(log_records(run)) == 1


def test_a_new_run_over_an_existing_one_is_refused_unless_overwrite(config_file, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", str(config_file), "--work-dir", str(run), "--set", "train.epochs=1"]
    assert cli_main(argv) == 0
    (run / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and f"slimpose train --resume {run}" in err and "--overwrite" in err
    assert cli_main(argv + ["--overwrite"]) == 0
    assert len(log_records(run)) == 1  # a fresh log, not appended to the old one
    assert (run / "notes.txt").read_text() == "mine"


def test_resume_needs_a_config_or_a_run(tmp_path, capsys):
    assert cli_main(["train", "--resume", str(tmp_path / "empty")]) == 2
    assert "no run to resume" in capsys.readouterr().err
    assert cli_main(["train"]) == 2
    assert "give an experiment CONFIG, or --resume WORK_DIR" in capsys.readouterr().err


def test_training_prints_one_human_line_per_epoch_and_logs_json(config_file, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli_main(["train", str(config_file), "--work-dir", str(run)]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2 and "{" not in out
    assert "epoch 1/2  loss " in lines[0] and " img/s" in lines[0] and " left" in lines[0] and "val AP " in lines[0]
    assert " left" not in lines[1]
    assert {"loss", "lr", "images_per_s", "val/AP"} <= set(log_records(run)[0])


def test_epoch_report_counts_later_stages_and_caps_by_the_budget():
    tc = TrainConfig(epochs=150, stages=7, restart_epoch=60)
    assert epochs_left(tc, 0, 150) == 6 * 90 and epochs_left(tc, 6, 149) == 1
    report = EpochReport(TrainConfig(epochs=10, max_minutes=1.0), "PCK")
    report.start -= 30  # 30 s into the run after one epoch: 9 epochs would take 270 s, the budget leaves 30
    line = report.line({"epoch": 1, "loss": 0.00123, "lr": 1e-3, "images_per_s": 123.4, "epoch_seconds": 30.0,
                        "val/PCK": 0.5, "val/PCK@0.1": 0.2}, 0, 1)
    assert line == "epoch 1/10  loss 0.00123  lr 1.00e-03  123 img/s  30 s/epoch  ~30 s left  val PCK 50.0%"


def test_eval_without_out_writes_into_the_current_directory(config_file, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    assert cli_main(["train", str(config_file), "--work-dir", str(run), "--set", "train.epochs=1"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert cli_main(["eval", "--checkpoint", str(run / "last.pth")]) == 0
    written = elsewhere / "eval_run_last" / "metrics.json"
    assert "AP" in json.loads(written.read_text())
    assert f"metrics written to {written.relative_to(elsewhere)}" in capsys.readouterr().out
    assert not list(run.glob("eval*")) and not (run / "results_keypoints.json").exists()


@pytest.mark.parametrize("override, message", [
    ("model.name=lpn50", "model.name: unknown value 'lpn50'; known: "),
    ("data.batch_size=0", "data.batch_size: must be at least 1, got 0"),
    ("data.input_size=[66,48]", "data.input_size: [66, 48] is not divisible by 4, the output stride of tinypose"),
])
def test_bad_config_values_are_one_line_cli_errors(config_file, tmp_path, capsys, override, message):
    assert cli_main(["train", str(config_file), "--work-dir", str(tmp_path / "run"), "--set", override]) == 2
    err = capsys.readouterr().err
    assert err.startswith("slimpose train: error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_quickstart_refuses_to_mix_into_a_previous_run(tmp_path, capsys):
    (tmp_path / "qs" / "train").mkdir(parents=True)
    (tmp_path / "qs" / "train" / "log.jsonl").write_text("{}\n")
    assert cli_main(["quickstart", "--out", str(tmp_path / "qs")]) == 2
    err = capsys.readouterr().err
    assert "already holds a run (log.jsonl)" in err and "--overwrite" in err
    assert not (tmp_path / "qs" / "data").exists()  # refused before generating anything


def test_eval_prints_pck_figures_as_percentages_and_ap_as_fractions(capsys):
    from slimpose.engine.commands import _print_metrics

    _print_metrics({"Head": 0.9, "PCK": 0.65384, "PCK@0.1": 0.2, "eval_seconds": 1.5})
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["PCK", "65.4%"] in lines and ["PCK@0.1", "20.0%"] in lines and ["Head", "90.0%"] in lines
    assert ["eval_seconds", "1.5"] in lines
    _print_metrics({"AP": 0.15123, "AR": 0.18})
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["AP", "0.1512"] in lines[-2:] and ["AR", "0.1800"] in lines[-2:]
