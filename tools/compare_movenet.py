"""Measure shipped weights beside MoveNet Lightning and record the figures in their manifests.

Runs the peer comparison script (``../shared/peers/compare.py``: MoveNet and slimpose models
on the same LSPET validation crops, latency timed round by round in one run) ``--runs``
times per weight without the flip test (``--flip-runs`` with it), each weight beside
MoveNet alone, then writes into each weight's manifest a
``vs_movenet`` block (PCK@0.2 over the 12 limb joints, MoveNet's in the same runs, every
run's latency ratio and their median) and rewrites ``docs/movenet_tradeoff.json``, the rows
of the README's picture:

    python tools/compare_movenet.py lpn_50_lsp_192x144 lpn_50_lsp_128x96_int8 --runs 5 --flip-runs 1
    slimpose plot --tradeoff docs/movenet_tradeoff.json --metric pck12 --out docs/movenet_tradeoff.png

Needs ``pip install ai-edge-litert`` (MoveNet's runtime) and ``../shared`` beside the
repository. Latency ratios move about 10% between runs on a shared machine: the median of
the runs is the figure.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

from slimpose.io import write_json_atomic
from slimpose.machine import cpu_name
from slimpose.weights import WEIGHTS_DIR, list_weights

ROOT = Path(__file__).resolve().parents[1]
COMPARE = ROOT.parent / "shared" / "peers" / "compare.py"
TRADEOFF = ROOT / "docs" / "movenet_tradeoff.json"
ROW = re.compile(r"^\| (?P<name>[^|]+?) \| (?P<pck12>[\d.]+) \| (?P<pck14>[\d.]+|n/a) \| [\d.]+ \| (?P<ratio>[\d.]+) \|$")
HEADER = re.compile(r"^LSPET (?P<split>im\d+-im\d+): (?P<images>\d+) scorable images;.*; (?P<threads>\d+) threads$")


def parse_compare_output(text: str) -> tuple[dict, list[dict]]:
    """compare.py's header (split, images, threads) and its table rows, MoveNet's first."""
    header = next((m.groupdict() for m in map(HEADER.match, text.splitlines()) if m), None)
    rows = [m.groupdict() for m in map(ROW.match, text.splitlines()) if m]
    if header is None or len(rows) < 2 or not rows[0]["name"].startswith("MoveNet"):
        raise SystemExit(f"compare.py printed no result table:\n{text}")
    return header, [{"name": r["name"], "pck12": float(r["pck12"]), "latency_ratio": float(r["ratio"])} for r in rows]


def run_compare(compare: Path, weights: list[str], flip: bool) -> tuple[dict, list[dict]]:
    argv = [sys.executable, str(compare), *weights] + (["--flip"] if flip else [])
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr}")
    return parse_compare_output(proc.stdout)


def measure(compare: Path, weights: list[str], runs: int, flip_runs: int) -> dict[str, dict]:
    """Every weight's ``vs_movenet`` block. Each weight runs beside MoveNet alone (a third
    model in the same run changes the threads' timing of both), ``runs`` times without the
    flip test and ``flip_runs`` times with it."""
    blocks: dict[str, dict] = {w: {} for w in weights}
    header: dict = {}
    movenet: set[float] = set()
    for weight in weights:
        block = blocks[weight]
        for flip, n in ((False, runs), (True, flip_runs)):
            suffix = "_flip" if flip else ""
            for k in range(n):
                header, (peer, row) = run_compare(compare, [weight], flip)
                movenet.add(peer["pck12"])
                print(f"{weight} run {k + 1}/{n}{' flip' if flip else ''}: {row['pck12']:.1f} at "
                      f"{row['latency_ratio']:.2f}x MoveNet's latency", flush=True)
                block[f"pck12{suffix}"] = row["pck12"]
                block.setdefault(f"latency_ratios{suffix}", []).append(row["latency_ratio"])
    if len(movenet) != 1:
        raise SystemExit(f"MoveNet's PCK differs between runs ({sorted(movenet)}): the data changed")
    common = dict(movenet_pck12=movenet.pop(), split=f"LSPET {header['split']}", images=int(header["images"]),
                  threads=int(header["threads"]), cpu=cpu_name(),
                  command=f"python tools/compare_movenet.py {' '.join(weights)} --runs {runs} --flip-runs {flip_runs}")
    for block in blocks.values():
        for suffix in ("", "_flip"):
            block[f"latency_ratio{suffix}"] = round(statistics.median(block[f"latency_ratios{suffix}"]), 2)
        block.update(common)
    return blocks


def tradeoff_rows(blocks: dict[str, dict]) -> list[dict]:
    """The picture's rows: MoveNet (the reference, latency 1) and each weight with and without flip."""
    first = next(iter(blocks.values()))
    rows = [{"name": "MoveNet Lightning int8", "pck12": first["movenet_pck12"], "latency_ratio": 1.0,
             "reference": True}]
    for name, block in blocks.items():
        rows.append({"name": name, "pck12": block["pck12"], "latency_ratio": block["latency_ratio"]})
        rows.append({"name": f"{name}, flip", "pck12": block["pck12_flip"], "latency_ratio": block["latency_ratio_flip"]})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", help="shipped weight names")
    parser.add_argument("--runs", type=int, default=5, help="compare.py runs per weight without flip test (default 5)")
    parser.add_argument("--flip-runs", type=int, default=5, help="compare.py runs per weight with it (default 5)")
    parser.add_argument("--compare", type=Path, default=COMPARE, help=f"the comparison script (default {COMPARE})")
    args = parser.parse_args(argv)
    shipped = {w.name: w for w in list_weights()}
    missing = [w for w in args.weights if w not in shipped]
    if missing:
        raise SystemExit(f"no manifest for {', '.join(missing)} in {WEIGHTS_DIR}")
    blocks = measure(args.compare, args.weights, args.runs, args.flip_runs)
    for name, block in blocks.items():
        manifest_path = WEIGHTS_DIR / f"{name}.json"
        shipped[name].manifest["vs_movenet"] = block
        write_json_atomic(manifest_path, shipped[name].manifest)
        print(f"wrote {manifest_path}: 12j {block['pck12']:.1f} at {block['latency_ratio']:.2f}x, "
              f"flip {block['pck12_flip']:.1f} at {block['latency_ratio_flip']:.2f}x (MoveNet {block['movenet_pck12']:.1f})")
    # every weight measured so far, this run's and earlier ones'
    recorded = {w.name: w.manifest["vs_movenet"] for w in shipped.values() if "vs_movenet" in w.manifest}
    write_json_atomic(TRADEOFF, tradeoff_rows(recorded), indent=1)
    print(f"wrote {TRADEOFF.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
