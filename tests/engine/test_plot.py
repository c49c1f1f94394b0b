"""`slimpose plot`: run curves from log.jsonl and the accuracy/latency picture, with
one-line errors for a wrong folder, a bad row, or matplotlib missing."""

import json
import sys

import pytest

from slimpose.cli import main as cli_main

pytest.importorskip("matplotlib")


def write_log(run_dir, records):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_curves_from_the_log(tmp_path, monkeypatch, capsys):
    records = [{"stage": 0, "epoch": e, "loss": 0.002 / e, "lr": 1e-3 * 0.9 ** e, "images_per_s": 100.0,
                **({"val/PCK": 0.1 * e, "val/PCK@0.1": 0.04 * e} if e % 2 == 0 else {})} for e in range(1, 7)]
    write_log(tmp_path / "runs" / "lpn", records)
    monkeypatch.chdir(tmp_path)
    assert cli_main(["plot", "runs/lpn"]) == 0
    assert is_png(tmp_path / "lpn_curves.png")
    assert "wrote lpn_curves.png" in capsys.readouterr().out
    assert cli_main(["plot", "runs/lpn", "--out", "figs/curves.png"]) == 0 and is_png(tmp_path / "figs" / "curves.png")


def test_tradeoff_picture(tmp_path):
    rows = [{"name": "lpn_50", "val_pck": 29.3, "latency_ms": 21.3},
            {"name": "repnet_a", "val_pck": 5.8, "latency_ms": 13.4},
            {"name": "tinypose", "val_pck": 12.0, "latency_ms": 3.2}]
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    out = tmp_path / "tradeoff.png"
    assert cli_main(["plot", "--tradeoff", str(tmp_path / "rows.json"), "--out", str(out)]) == 0
    assert is_png(out)


def test_tradeoff_against_a_reference_model_uses_latency_ratios(tmp_path):
    from slimpose.engine.plot import read_tradeoff_rows

    rows = [{"name": "MoveNet Lightning", "pck12": 56.2, "latency_ratio": 1.0, "reference": True},
            {"name": "lpn_50_lsp_192x144", "pck12": 60.9, "latency_ratio": 3.7}]
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    assert read_tradeoff_rows(tmp_path / "rows.json", "pck12")[1:] == ("pck12", "latency_ratio")
    out = tmp_path / "vs.png"
    assert cli_main(["plot", "--tradeoff", str(tmp_path / "rows.json"), "--metric", "pck12", "--out", str(out)]) == 0
    assert is_png(out)


def test_labels_of_points_that_measure_alike_go_on_separate_lines():
    from slimpose.engine.plot import label_offsets

    # hrnet_w32 and elhrnet: 12.6 PCK at 35.0 ms both; sdhrnet far to the right
    points = [(13.1, 56.6), (9.1, 55.9), (35.0, 12.6), (35.0, 12.6), (50.9, 12.1), (7.9, 5.1)]
    offsets = label_offsets(points)
    assert offsets[2] == 0 and offsets[3] == -11
    assert offsets[1] == -11  # the INT8 point sits just left of and below the fp32 one
    assert offsets[4] == 0 and offsets[5] == 0
    assert label_offsets([(1.0, 1.0)]) == [0]


@pytest.mark.parametrize("rows, message", [
    ([{"name": "a", "AP": 0.5}], "no latency key that every row has"),
    ([{"name": "a", "AP": 0.5, "latency_ms": "3"}], r"\[0\].latency_ms: expected a number, got '3'"),
    ([{"name": "a", "AP": 0.5, "latency_ratio": 1.0}, {"name": "b", "AP": 0.4, "latency_ms": 2.0}],
     "no latency key that every row has"),
    ([{"name": "a", "latency_ms": 3.0}], "no accuracy key that every row has"),
    ([{"name": "a", "AP": 0.5, "latency_ms": 0}], r"\[0\].latency_ms: must be positive"),
    ({"name": "a"}, "expected a non-empty JSON list"),
])
def test_bad_tradeoff_rows_name_the_field(tmp_path, capsys, rows, message):
    import re

    (tmp_path / "rows.json").write_text(json.dumps(rows))
    assert cli_main(["plot", "--tradeoff", str(tmp_path / "rows.json"), "--out", str(tmp_path / "t.png")]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "rows.json" in err and len(err.strip().splitlines()) == 1


def test_a_folder_without_a_log_and_missing_matplotlib_are_one_line_errors(tmp_path, monkeypatch, capsys):
    assert cli_main(["plot", str(tmp_path)]) == 2
    assert "log.jsonl: file: not found (give a training run folder" in capsys.readouterr().err
    write_log(tmp_path / "run", [{"epoch": 1, "loss": 1.0, "lr": 1e-3}])
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an install without the extra looks like
    assert cli_main(["plot", str(tmp_path / "run"), "--out", str(tmp_path / "c.png")]) == 2
    assert "pip install matplotlib" in capsys.readouterr().err
