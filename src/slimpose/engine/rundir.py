"""A training run's folder: which files belong to the run, who may write them, and how a
resumed run's config compares with the one it was started with. Torch-free at import
(``slimpose eval`` imports it through its command module); restoring a run's files reads
checkpoints with torch."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from slimpose.errors import CheckpointError, ConfigError
from slimpose.io import atomic_path, atomic_write, remove_temporary_files, write_json_atomic

# What the trainer writes; anything else in the folder belongs to the user.
RUN_FILES = ("config.yaml", "last.pth", "best.pth", "log.jsonl", "summary.json")
RUN_GLOBS = ("stage*_best.pth",)
RUN_FOLDERS = ("val_predictions",)
LOCK_FILE = ".slimpose.lock"


def resume_command(work_dir: Path) -> str:
    return f"slimpose train --resume {shlex.quote(str(work_dir))}"


def run_files(work_dir: Path) -> list[Path]:
    """The files and folders of a previous run in ``work_dir``."""
    found = [work_dir / name for name in RUN_FILES + RUN_FOLDERS if (work_dir / name).exists()]
    for pattern in RUN_GLOBS:
        found += sorted(work_dir.glob(pattern))
    return found


def claim_work_dir(work_dir: Path, overwrite: bool, resume_hint: str) -> None:
    """Refuse to start a new run over an existing one unless ``overwrite``; then remove
    only the old run's own files. Call only while holding the folder's lock."""
    existing = run_files(work_dir)
    if not existing:
        return
    if not overwrite:
        names = ", ".join(p.name for p in existing)
        raise ConfigError(f"{work_dir}: already holds a run ({names}); continue it with `{resume_hint}`, "
                          f"choose another output folder, or add --overwrite to start afresh there")
    for path in existing:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    print(f"slimpose: --overwrite: removed the previous run's {', '.join(p.name for p in existing)} from {work_dir}")


@contextmanager
def locked_work_dir(work_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on a run folder: a second run (or an --overwrite) started
    on the same folder is refused instead of interleaving its files with this one's.
    Whoever holds it is the folder's only writer, so temporary files found then are
    leftovers of a killed writer, and go.

    The operating system drops the lock when the process ends, however it ends, so a
    killed run never leaves the folder locked.
    """
    import fcntl  # POSIX; slimpose trains on Linux and macOS

    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise ConfigError(f"{work_dir}: another slimpose run is using this folder (pid {holder}); wait for it "
                              f"to end or choose another --work-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        for folder in (work_dir, *(work_dir / name for name in RUN_FOLDERS)):
            remove_temporary_files(folder)
        yield
    finally:
        os.close(fd)  # releases the lock


def config_differences(saved: dict, given: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """(dotted path, saved value, given value) for every field where two config dicts differ."""
    diffs = []
    for key in sorted(set(saved) | set(given)):
        a, b = saved.get(key), given.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_differences(a, b, path + ".")
        elif a != b:
            diffs.append((path, a, b))
    return diffs


def describe_differences(diffs: list[tuple[str, object, object]]) -> str:
    return "; ".join(f"{path}: saved {a!r}, given {b!r}" for path, a, b in diffs)


def keep_previous_config_file(work_dir: Path, epoch: int) -> Path:
    """Copy the run's config.yaml aside before a changed config replaces it (a copy: if
    writing the new one fails, config.yaml stays as it was)."""
    kept = work_dir / f"config.until_epoch{epoch}.yaml"
    n = 1
    while kept.exists():
        n += 1
        kept = work_dir / f"config.until_epoch{epoch}.{n}.yaml"
    with atomic_path(kept) as tmp:
        shutil.copyfile(work_dir / "config.yaml", tmp)
    return kept


def write_log(work_dir: Path, records: list[dict]) -> None:
    """log.jsonl as a whole: one JSON line per committed epoch."""
    with atomic_write(work_dir / "log.jsonl") as f:
        f.writelines(json.dumps(record) + "\n" for record in records)


def _logged_records(work_dir: Path, checkpoint: dict) -> list[dict]:
    """The epochs a checkpoint has seen: stored in it since checkpoints carry their log;
    for older ones, the lines of log.jsonl up to the checkpoint's epoch."""
    if isinstance(checkpoint.get("log"), list):
        return checkpoint["log"]
    path = work_dir / "log.jsonl"
    if not path.is_file():
        return []
    until = (checkpoint["stage"], checkpoint["epoch"])
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a kill
            continue
        if isinstance(record, dict) and (record.get("stage", 0), record.get("epoch", 0)) <= until:
            records.append(record)
    return records


def copy_last_checkpoint(work_dir: Path, names: list[str]) -> None:
    """last.pth copied, whole or not at all, to each of ``names`` (best.pth, ...)."""
    for name in names:
        with atomic_path(work_dir / name) as tmp:
            shutil.copyfile(work_dir / "last.pth", tmp)


def _holds_epoch(path: Path, checkpoint: dict) -> bool:
    if not path.is_file():
        return False
    from slimpose.engine.checkpoint import load_checkpoint  # torch: only when a run is restored

    try:
        saved = load_checkpoint(path)
    except CheckpointError:
        return False
    return (saved.get("stage"), saved.get("epoch")) == (checkpoint["stage"], checkpoint["epoch"])


def restore_run_files(work_dir: Path, checkpoint: dict) -> list[dict]:
    """Bring the files written after ``work_dir``'s last.pth (``checkpoint``, already
    loaded) up to it: the copies it was also saved as (best.pth when its epoch improved),
    log.jsonl with exactly its epochs, and summary.json when training ended with it.
    A process killed between those writes thus loses nothing. Returns the log's records."""
    copy_last_checkpoint(work_dir, [name for name in checkpoint.get("improved") or []
                                    if not _holds_epoch(work_dir / name, checkpoint)])
    records = _logged_records(work_dir, checkpoint)
    write_log(work_dir, records)
    if checkpoint.get("summary") and not (work_dir / "summary.json").is_file():
        write_json_atomic(work_dir / "summary.json", checkpoint["summary"])
    return records
