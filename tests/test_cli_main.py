"""slimpose.cli: the command itself (pipes, help, exit codes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _run_into_closed_pipe(args: list[str]) -> subprocess.CompletedProcess:
    """Run ``python -m slimpose ARGS`` with a stdout pipe whose reader is already gone
    (``slimpose models | head -0``)."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    read_fd, write_fd = os.pipe()
    os.close(read_fd)  # the reader closes before slimpose writes a byte
    try:
        return subprocess.run([sys.executable, "-m", "slimpose", *args], stdout=write_fd, stderr=subprocess.PIPE,
                              text=True, env=env, timeout=120)
    finally:
        os.close(write_fd)


@pytest.mark.parametrize("args", [["models"], ["--help"], ["models", "--help"]])
def test_a_closed_pipe_ends_quietly(args):
    res = _run_into_closed_pipe(args)
    assert "Traceback" not in res.stderr and "BrokenPipeError" not in res.stderr, res.stderr
    assert res.returncode in (0, 141)


def test_usage_describes_slimpose_and_gives_an_example_per_command(capsys):
    from slimpose.cli import COMMANDS, main

    assert main([]) == 0
    text = capsys.readouterr().out
    assert "top-down" in text and "examples:" in text
    for name in COMMANDS:
        assert f"\n  slimpose {name} " in text, name


@pytest.mark.parametrize("name", sorted(__import__("slimpose.cli", fromlist=["COMMANDS"]).COMMANDS))
def test_each_command_help_ends_with_an_example(name, capsys):
    from slimpose.cli import main

    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert "example:" in lines
    example = lines[lines.index("example:") + 1].strip()
    assert example.startswith(f"slimpose {name} "), example


def test_each_example_parses():
    import argparse
    import importlib
    import shlex

    from slimpose.cli import COMMANDS, EXAMPLES, build_parser

    assert set(EXAMPLES) == set(COMMANDS)
    for name, example in EXAMPLES.items():
        parser = build_parser(name, importlib.import_module(COMMANDS[name][0]))
        parser.exit_on_error = False
        try:
            parser.parse_args(shlex.split(example)[2:])
        except (argparse.ArgumentError, SystemExit) as e:
            pytest.fail(f"{example}: {e}")


# --out: a command that writes one file takes a file name (an existing folder is refused),
# one that writes several files takes a folder (an existing file, or a new name with a
# file's suffix, is refused): one line each, before any work.
FILE_OUTS = [
    ["eval", "--checkpoint", "x.pth", "--out", "{dir}"],
    ["eval", "--ann", "a.json", "--results", "r.json", "--out", "{dir}"],
    ["export", "lpn_50", "--out", "{dir}"],
    ["quantize", "m.onnx", "--out", "{dir}", "--calib-images", "imgs"],
    ["plot", "run", "--out", "{dir}"],
    ["data", "show", "c.yaml", "--out", "{dir}"],
    ["data", "convert", "in", "--from", "labelme", "--out", "{dir}"],
    ["models", "--json", "{dir}"],
    ["complexity", "lpn_50", "--json", "{dir}"],
    ["bench", "lpn_50", "--json", "{dir}"],
    ["weights", "--json", "{dir}"],
]
FOLDER_OUTS = [
    ["infer", "m.onnx", "photo.jpg", "--out", "{file}"],
    ["data", "synthetic", "--out", "{file}"],
    ["quickstart", "--out", "{file}"],
]


@pytest.mark.parametrize("argv", FILE_OUTS, ids=lambda a: " ".join(a[:2]))
def test_a_one_file_out_refuses_a_folder(argv, tmp_path, capsys):
    from slimpose.cli import main

    folder = tmp_path / "folder"
    folder.mkdir()
    assert main([a.format(dir=folder) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is a folder" in err and "give a file name" in err, err
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("argv", FOLDER_OUTS, ids=lambda a: a[0])
def test_a_folder_out_refuses_a_file_and_a_file_name(argv, tmp_path, capsys):
    from slimpose.cli import main

    existing = tmp_path / "existing"
    existing.write_text("keep")
    for out, says in ((existing, "is a file"), (tmp_path / "poses.jpg", "looks like a file name"),
                      (tmp_path / "poses.json", "looks like a file name")):
        assert main([a.format(file=out) for a in argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and says in err and "give a folder name" in err, err
    assert existing.read_text() == "keep" and not (tmp_path / "poses.jpg").exists()
