"""The output folder of a ``slimpose infer`` run, and what a user can trust in it.

- Every file is written whole (a temporary file, then a rename): a stopped or killed run
  never leaves a half-written results.json or drawing.
- ``results.json`` is rewritten as the run goes (after the first image, then every few
  seconds), so a killed run leaves the results of the images done by then.
- ``infer_run.json`` names the source, the model and every file the run writes, before it
  writes any, and says ``"status": "running"`` until the run ends (then "finished", or how
  it stopped): after a kill it still says "running", so a partial results.json never
  passes for a whole one.
- A folder that holds an earlier run's outputs is refused unless ``overwrite``; then only
  the files that run listed are removed, before anything new is written, so no earlier
  results.json or drawing is ever left beside new ones.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np

from slimpose.errors import DataError
from slimpose.io import atomic_path, remove_temporary_files, write_json_atomic

RESULTS = "results.json"
RECORD = "infer_run.json"
# Results are rewritten at most this often, and never more often than ten times as long
# as the last rewrite took: a long video's growing record costs at most ~10% of the run.
CHECKPOINT_S = 2.0


def drawing_name(image: Path) -> str:
    """The drawing of ``a.jpg`` is ``a.jpg_pose.jpg``: the whole source name, so that
    ``a.jpg`` and ``a.png`` in one folder get different drawings."""
    return f"{image.name}_pose.jpg"


def check_out_folder(out: Path, source_folder: Path | None) -> None:
    """Refuse an ``--out`` that is a file, or that lies in the source folder (its drawings
    would sit among the images and be read as images by the next run)."""
    if out.exists() and not out.is_dir():
        raise DataError(str(out), "--out", "is a file; give a folder for results.json and the drawings")
    if source_folder is not None:
        src, dst = source_folder.resolve(), out.resolve()
        if dst == src or src in dst.parents:
            raise DataError(str(out), "--out", f"lies inside the source folder {source_folder}: the drawings would "
                                               f"mix with the images; choose a folder outside it")


def _listed_outputs(record_path: Path) -> list[str]:
    """The file names an earlier run's record lists (plain names inside the folder only)."""
    try:
        names = json.loads(record_path.read_text(encoding="utf-8"))["outputs"]
        if not (isinstance(names, list) and all(isinstance(n, str) and n == Path(n).name and n not in ("", ".", "..")
                                                for n in names)):
            raise ValueError
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise DataError(str(record_path), "outputs", "not a list of file names written by slimpose infer; "
                                                     "remove the earlier outputs by hand or choose another --out")
    return names


class OutputFolder:
    """``--out``: claimed for a run, then results written as the run goes."""

    def __init__(self, path: Path, overwrite: bool):
        self.path, self.overwrite = path, overwrite
        self.results_path = path / RESULTS
        self.record: dict | None = None  # set once the folder is claimed
        self.last_write = -float("inf")
        self.write_seconds = 0.0

    def claim(self, source: str, model: Path, outputs: list[str]) -> None:
        """Make the folder this run's: refuse or remove an earlier run's files, then list
        ``outputs`` (the files this run may write, besides the record) before writing any."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DataError(str(self.path), "--out", f"cannot create the folder ({e.strerror or e})") from None
        self._clear_earlier_run([RESULTS, *outputs])
        remove_temporary_files(self.path)  # a killed run's; a live one would have been refused above
        self.record = {"source": source, "model": str(model), "status": "running", "outputs": [RESULTS, *outputs]}
        write_json_atomic(self.path / RECORD, self.record)

    def _clear_earlier_run(self, outputs: list[str]) -> None:
        record_path = self.path / RECORD
        earlier = _listed_outputs(record_path) if record_path.exists() else []
        found = [n for n in dict.fromkeys([*earlier, *outputs]) if (self.path / n).is_file()]
        if record_path.exists():
            found.append(RECORD)
        if not found:
            return
        if not self.overwrite:
            shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
            raise DataError(str(self.path), "--out", f"already holds the outputs of an earlier infer run ({shown}); "
                                                     f"choose another folder, or add --overwrite to replace them")
        for name in found:
            (self.path / name).unlink()
        print(f"slimpose infer: --overwrite: removed {len(found)} file{'' if len(found) == 1 else 's'} of the earlier "
              f"run from {self.path}")

    def save_results(self, data, final: bool = False) -> None:
        """Rewrite results.json: at once when ``final``, else when a checkpoint is due."""
        now = time.perf_counter()
        if not final and now - self.last_write < max(CHECKPOINT_S, 10 * self.write_seconds):
            return
        write_json_atomic(self.results_path, data, indent=None)
        self.last_write = time.perf_counter()
        self.write_seconds = self.last_write - now

    def write_drawing(self, name: str, canvas: np.ndarray) -> Path:
        target = self.path / name
        with atomic_path(target) as tmp:
            if not cv2.imwrite(str(tmp), canvas):
                raise DataError(str(target), "--out", "cannot write the drawing")
        return target

    def finish(self, data, status: str) -> None:
        """The final results and the run's status; nothing when the folder was never claimed."""
        if self.record is None:
            return
        self.save_results(data, final=True)
        self.record["status"] = status
        write_json_atomic(self.path / RECORD, self.record)
