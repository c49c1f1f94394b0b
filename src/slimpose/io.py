"""Writing output files all-or-nothing: a temporary file beside the target, then a rename.

A crash, a full disk or a failed check while writing never leaves a half-written file
where a reader expects a whole one, and never destroys the previous version: the target
changes in one ``os.replace``, or not at all. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from slimpose.errors import OutputError

# atomic_path's temporary names: ".<stem>.<8 random characters of mkstemp>.tmp<suffix>".
_TEMPORARY_NAME = re.compile(r"^\..*\.[a-z0-9_]{8}\.tmp(\.[^.]*)?$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path in ``path``'s folder for tools that write by file name; it
    replaces ``path`` when the block ends without an exception and is deleted otherwise.

    The temporary name keeps ``path``'s suffix (tools that look at it still work); the
    result gets ordinary permissions (0666 less the umask), not mkstemp's 0600.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give the path of a file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """``open(path, mode)`` that becomes visible as a whole at the end of the block.

    Text modes default to UTF-8. The data is flushed to disk before the rename.
    """
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def write_json_atomic(path: str | Path, data, indent: int | None = 2, **dumps_kwargs) -> None:
    """Write ``data`` as JSON (a trailing newline) through :func:`atomic_write`.

    The text is produced before the file is opened, so unserialisable data raises
    without touching ``path``.
    """
    text = json.dumps(data, indent=indent, **dumps_kwargs) + "\n"
    with atomic_write(path) as f:
        f.write(text)


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def remove_temporary_files(folder: str | Path) -> int:
    """Delete the temporary files a killed writer left in ``folder`` (never read by
    anything: a write becomes visible only by its rename). Call only where no other
    writer can be at work. Returns how many there were."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    leftovers = [p for p in folder.iterdir() if _TEMPORARY_NAME.match(p.name) and p.is_file()]
    for path in leftovers:
        path.unlink(missing_ok=True)
    return len(leftovers)
