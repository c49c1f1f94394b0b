"""Runs ``slimpose`` with a fault injected, for the fault-injection tests:

    python faultrun.py kill-before-replace NAME N -- train CONFIG ...
    python faultrun.py kill-after-replace NAME N -- train CONFIG ...
    python faultrun.py disk-full NAME N -- train CONFIG ...

``kill-*-replace``: SIGKILL this process just before / just after the N-th time a file
named NAME is put in place by a rename (every slimpose output is written to a temporary
file and renamed): a crash between two writes. ``disk-full``: from the N-th file opened
for writing whose name contains NAME on, each such file gets ``OSError(ENOSPC)`` after its
first bytes, as on a disk that filled up. Nothing in slimpose knows about this script.
"""

import builtins
import errno
import io
import os
import signal
import sys
from pathlib import Path


def _count_calls(name: str, nth: int, and_after: bool = False):
    seen = 0

    def is_due(path) -> bool:
        nonlocal seen
        if name in Path(os.fsdecode(path)).name:
            seen += 1
            return seen == nth or (and_after and seen > nth)
        return False
    return is_due


def kill_around_replace(name: str, nth: int, after: bool) -> None:
    real_replace = os.replace
    due = _count_calls(name, nth)

    def replace(src, dst, *args, **kwargs):
        if Path(os.fsdecode(dst)).name != name:
            return real_replace(src, dst, *args, **kwargs)
        kill = due(dst)
        if kill and not after:
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst, *args, **kwargs)
        if kill:
            os.kill(os.getpid(), signal.SIGKILL)
    os.replace = replace


class _FillingFile:
    """A writable file that accepts a few bytes, then fails as a full disk does."""

    def __init__(self, f):
        self._f, self._room = f, 64

    def write(self, data):
        if len(data) > self._room:
            self._f.write(data[:self._room])
            self._room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._f.write(data)

    def __getattr__(self, attr):
        return getattr(self._f, attr)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def fill_disk_at(name: str, nth: int) -> None:
    real_open = builtins.open
    due = _count_calls(name, nth, and_after=True)

    def open_(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        writing = any(c in mode for c in "wax+")
        if writing and isinstance(file, (str, bytes, os.PathLike)) and due(file):
            return _FillingFile(f)
        return f
    builtins.open = io.open = open_


def main() -> int:
    sep = sys.argv.index("--")
    fault, name, nth = sys.argv[1:sep]
    if fault == "disk-full":
        fill_disk_at(name, int(nth))
    else:
        kill_around_replace(name, int(nth), after=fault == "kill-after-replace")
    from slimpose.cli import main as slimpose_main
    return slimpose_main(sys.argv[sep + 1:])


if __name__ == "__main__":
    sys.exit(main())
