"""The one line per epoch that training prints (``log.jsonl`` keeps the full record)."""

from __future__ import annotations

import time

from slimpose.config import TrainConfig
from slimpose.metrics import format_metric, is_pck_metrics


def epochs_left(tc: TrainConfig, stage: int, next_epoch: int) -> int:
    """Epochs still to run, counting the later stages of an iterative schedule."""
    later_stages = tc.stages - 1 - stage
    return max(tc.epochs - next_epoch, 0) + later_stages * (tc.epochs - tc.restart_epoch)


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class EpochReport:
    """Formats an epoch's record as ``epoch 3/35  loss ...  ~4.1 min left  AP 0.512``.

    The time left is the mean wall-clock time of this process's epochs (validation
    included) times the epochs left, capped by what remains of ``train.max_minutes``.
    """

    def __init__(self, tc: TrainConfig, main_metric: str):
        self.tc, self.main_metric = tc, main_metric
        self.start = time.perf_counter()
        self.epochs_run = 0

    def seconds_left(self, stage: int, next_epoch: int) -> float:
        elapsed = time.perf_counter() - self.start
        left = elapsed / max(self.epochs_run, 1) * epochs_left(self.tc, stage, next_epoch)
        if self.tc.max_minutes > 0:
            left = min(left, max(60 * self.tc.max_minutes - elapsed, 0.0))
        return left

    def line(self, record: dict, stage: int, next_epoch: int) -> str:
        self.epochs_run += 1
        tc = self.tc
        where = f"stage {stage + 1}/{tc.stages} " if tc.stages > 1 else ""
        parts = [f"{where}epoch {record['epoch']}/{tc.epochs}", f"loss {record['loss']:.4g}", f"lr {record['lr']:.2e}",
                 f"{record['images_per_s']:.0f} img/s", f"{format_duration(record['epoch_seconds'])}/epoch"]
        if epochs_left(tc, stage, next_epoch):
            parts.append(f"~{format_duration(self.seconds_left(stage, next_epoch))} left")
        metric = self._metric_key(record)
        if metric:
            name = metric[len("val/"):]
            parts.append(f"val {name} {format_metric(name, record[metric], is_pck_metrics([metric]))}")
        return "  ".join(parts)

    def _metric_key(self, record: dict) -> str | None:
        main = f"val/{self.main_metric}"
        if main in record:
            return main
        return next((k for k in record if k.startswith("val/") and isinstance(record[k], float)), None)


# Seconds between in-epoch progress lines when there is no progress bar (stderr not a
# terminal: output redirected to a file or a pipe, a batch job). Tests set it to 0.
PLAIN_PROGRESS_SECONDS = 30.0


class PlainProgress:
    """In-epoch progress for a log file: ``  epoch 3/35  iteration 120/400  loss 0.00123
    41 img/s`` at most every :data:`PLAIN_PROGRESS_SECONDS` (none for an epoch's last
    iteration: the epoch line follows). ``enabled`` False (a terminal shows the tqdm bar,
    or not the main process) prints nothing."""

    def __init__(self, label: str, total: int, enabled: bool):
        self.label, self.total, self.enabled = label, total, enabled
        self.last = time.perf_counter()

    def update(self, done: int, loss: float, images_per_s: float) -> None:
        if not self.enabled or done >= self.total:
            return
        now = time.perf_counter()
        if now - self.last >= PLAIN_PROGRESS_SECONDS:
            self.last = now
            print(f"  {self.label}  iteration {done}/{self.total}  loss {loss:.4g}  {images_per_s:.0f} img/s",
                  flush=True)
