"""``slimpose plot``: a run's training curves, or accuracy against latency of models.

Needs matplotlib (the ``plot`` extra); nothing else in slimpose does.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from slimpose.errors import DataError, SlimposeError

# Accuracy keys a trade-off row may carry, in the order they are looked for.
ACCURACY_KEYS = ("val_pck", "AP", "PCK", "PCKh")
# A row's latency: milliseconds, or a ratio to a reference model timed in the same run (the
# figure that holds across machines); every row of a file uses the same one.
LATENCY_KEYS = {"latency_ms": "latency (ms)", "latency_ratio": "latency / the reference's"}
# The validation metrics a run's picture shows when it has more than MAX_CURVES.
MAIN_METRICS = ("AP", "AP50", "AR", "PCK", "PCK@0.1", "PCKh", "PCKh@0.1")
MAX_CURVES = 4


def add_plot_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", nargs="?", help="training run folder (reads its log.jsonl)")
    p.add_argument("--tradeoff", metavar="ROWS.json",
                   help="instead: accuracy against latency from a JSON list of {name, val_pck or AP, latency_ms or "
                        "latency_ratio}; a row with \"reference\": true (a peer model) is drawn as a star")
    p.add_argument("--metric", help="with --tradeoff: the accuracy key (default: the first of "
                                    + ", ".join(ACCURACY_KEYS) + " that every row has)")
    p.add_argument("--out", help="PNG to write (default: ./<run>_curves.png, or ./tradeoff.png)")


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise SlimposeError("plotting needs matplotlib: pip install matplotlib "
                            "(or pip install -e '.[plot]')") from None
    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    return plt


def read_log(path: Path) -> list[dict]:
    if not path.is_file():
        raise DataError(path, "file", "not found (give a training run folder, which holds log.jsonl)")
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(path, f"line {n}", f"not a JSON record ({e.msg})") from None
        if not isinstance(record, dict) or "loss" not in record or "lr" not in record:
            raise DataError(path, f"line {n}", "expected an epoch record with loss and lr")
        records.append(record)
    if not records:
        raise DataError(path, "file", "holds no epochs yet")
    return records


def validation_metrics(records: list[dict]) -> list[str]:
    """The ``val/`` keys worth a curve: metrics, not timings, at most MAX_CURVES."""
    keys = sorted({k for r in records for k, v in r.items()
                   if k.startswith("val/") and not k.endswith("_seconds") and isinstance(v, (int, float))})
    if len(keys) > MAX_CURVES:
        main = [k for k in keys if k[len("val/"):] in MAIN_METRICS]
        keys = (main or keys)[:MAX_CURVES]
    return keys


def plot_run(run_dir: Path, out: Path) -> Path:
    """Loss, lr and every validation metric of a run against the epochs trained."""
    records = read_log(run_dir / "log.jsonl")
    # Later stages of an iterative schedule restart their epoch count; lay them end to end.
    x = list(range(1, len(records) + 1))
    val_keys = validation_metrics(records)
    plt = _pyplot()
    panels = 3 if val_keys else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.8))
    axes[0].plot(x, [r["loss"] for r in records], marker=".")
    if all(r["loss"] > 0 for r in records):
        axes[0].set_yscale("log")
    axes[0].set_title("training loss")
    axes[1].plot(x, [r["lr"] for r in records], marker=".", color="tab:orange")
    axes[1].ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    axes[1].set_title("learning rate (end of epoch)")
    if val_keys:
        for key in val_keys:
            points = [(xi, r[key]) for xi, r in zip(x, records) if key in r]
            axes[2].plot(*zip(*points), marker="o", label=key[len("val/"):])
        axes[2].set_title("validation")
        axes[2].legend(fontsize=7, ncol=2)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    fig.suptitle(str(run_dir))
    return _save(plt, fig, out)


def _key_of_every_row(rows: list, keys, what: str, path: Path, hint: str = "") -> str:
    """The first of ``keys`` that every row has."""
    for key in keys:
        if all(key in row for row in rows):
            return key
    raise DataError(path, "rows", f"no {what} key that every row has; expected one of {', '.join(keys)}{hint}")


def read_tradeoff_rows(path: Path, metric: str | None) -> tuple[list[dict], str, str]:
    """The rows of a trade-off file, its accuracy key and its latency key."""
    if not path.is_file():
        raise DataError(path, "file", "not found")
    try:
        rows = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(path, "file", f"not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise DataError(path, "file", "expected a non-empty JSON list of {name, val_pck or AP, latency_ms} objects")
    metric = metric or _key_of_every_row(rows, ACCURACY_KEYS, "accuracy", path, " (or name it with --metric)")
    latency = _key_of_every_row(rows, LATENCY_KEYS, "latency", path)
    for i, row in enumerate(rows):
        if not isinstance(row.get("name"), str):
            raise DataError(path, f"[{i}].name", "missing or not a string")
        for key in (latency, metric):
            value = row.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise DataError(path, f"[{i}].{key}", f"expected a number, got {value!r}")
        if row[latency] <= 0:
            raise DataError(path, f"[{i}].{latency}", f"must be positive, got {row[latency]}")
    return rows, metric, latency


def label_offsets(points: list[tuple[float, float]], width: float = 0.24, height: float = 0.06) -> list[int]:
    """Vertical label offsets in points (0, -11, -22, ...). A label is about ``width`` of
    the x span wide and ``height`` of the y span tall; a point whose label would start
    inside an earlier point's label box gets the next free line below it, so models that
    measure alike do not print their names over each other."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    xspan, yspan = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    offsets: list[int] = []
    for i, (x, y) in enumerate(points):
        taken = {offsets[j] for j in range(i)
                 if abs(points[j][0] - x) < width * xspan and abs(points[j][1] - y) < height * yspan}
        offsets.append(next(-11 * k for k in range(len(points)) if -11 * k not in taken))
    return offsets


def plot_tradeoff(path: Path, out: Path, metric: str | None = None) -> Path:
    """One labelled point per model: accuracy (up) against latency (left is faster); a
    reference row is a star."""
    rows, metric, latency = read_tradeoff_rows(path, metric)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    points = [(row[latency], row[metric]) for row in rows]
    for row, xy, dy in zip(rows, points, label_offsets(points)):
        if row.get("reference"):
            ax.scatter(*xy, s=160, marker="*", color="black", zorder=3)
        else:
            ax.scatter(*xy, s=40)
        ax.annotate(row["name"], xy, textcoords="offset points", xytext=(5, 4 + dy), fontsize=8)
    xs = [x for x, _ in points]
    ax.set_xlim(right=max(xs) + 0.3 * ((max(xs) - min(xs)) or max(xs)))  # room for the rightmost label
    ax.set_xlabel(LATENCY_KEYS[latency])
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} against latency ({path.name})")
    ax.grid(alpha=0.3)
    return _save(plt, fig, out)


def _save(plt, fig, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def run_plot(args: argparse.Namespace) -> int:
    if args.out and (Path(args.out).is_dir() or args.out.endswith("/")):  # (the engine layer: no cli_support)
        raise SlimposeError(f"--out {args.out}: is a folder; this command writes one file: give a file name, "
                            f"e.g. {Path(args.out) / 'curves.png'}")
    if args.tradeoff:
        if args.run_dir:
            raise SlimposeError("give a RUN_DIR or --tradeoff ROWS.json, not both")
        path = plot_tradeoff(Path(args.tradeoff), Path(args.out or "tradeoff.png"), args.metric)
    elif args.run_dir:
        run_dir = Path(args.run_dir)
        path = plot_run(run_dir, Path(args.out or f"{run_dir.resolve().name}_curves.png"))
    else:
        raise SlimposeError("give a training run folder (slimpose plot RUN_DIR) or --tradeoff ROWS.json")
    print(f"wrote {path}")
    return 0
