"""A training run's folder: which files belong to the run, and how a resumed run's
config compares with the one it was started with."""

from __future__ import annotations

import shutil
from pathlib import Path

from slimpose.errors import ConfigError

# What the trainer writes; anything else in the folder belongs to the user.
RUN_FILES = ("config.yaml", "last.pth", "best.pth", "log.jsonl", "summary.json")
RUN_GLOBS = ("stage*_best.pth",)
RUN_FOLDERS = ("val_predictions",)


def run_files(work_dir: Path) -> list[Path]:
    """The files and folders of a previous run in ``work_dir``."""
    found = [work_dir / name for name in RUN_FILES + RUN_FOLDERS if (work_dir / name).exists()]
    for pattern in RUN_GLOBS:
        found += sorted(work_dir.glob(pattern))
    return found


def claim_work_dir(work_dir: Path, overwrite: bool, resume_hint: str) -> None:
    """Refuse to start a new run over an existing one unless ``overwrite``; then remove
    only the old run's own files."""
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


def keep_previous_config(work_dir: Path, epoch: int) -> Path:
    """Move the run's config.yaml aside before a changed config replaces it."""
    kept = work_dir / f"config.until_epoch{epoch}.yaml"
    n = 1
    while kept.exists():
        n += 1
        kept = work_dir / f"config.until_epoch{epoch}.{n}.yaml"
    (work_dir / "config.yaml").replace(kept)
    return kept
