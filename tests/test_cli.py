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
