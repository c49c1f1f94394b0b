"""tools/compare_movenet.py reads what ../shared/peers/compare.py prints and records it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("compare_movenet", ROOT / "tools" / "compare_movenet.py")
compare_movenet = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_movenet)

OUTPUT = """LSPET im08001-im09000: 720 scorable images; flip test off for slimpose models; 2 threads
| model | PCK@0.2 12j | 14j | latency ms (median) | latency / MoveNet |
|---|---|---|---|---|
| MoveNet Lightning v4 int8 (192x192) | 56.2 | n/a | 5.10 | 1.00 |
| lpn_50_lsp_192x144 (192x144) | 60.9 | 64.1 | 18.90 | 3.71 |
| lpn_50_coco_192x144 (192x144) | 40.3 | n/a | 18.70 | 3.67 |
"""


def test_the_comparison_table_is_parsed_movenet_first():
    header, rows = compare_movenet.parse_compare_output(OUTPUT)
    assert header == {"split": "im08001-im09000", "images": "720", "threads": "2"}
    assert [(r["pck12"], r["latency_ratio"]) for r in rows] == [(56.2, 1.0), (60.9, 3.71), (40.3, 3.67)]


def test_output_without_a_table_stops_the_tool():
    with pytest.raises(SystemExit, match="compare.py printed no result table"):
        compare_movenet.parse_compare_output("Traceback ...\n")


def test_picture_rows_put_movenet_first_as_the_reference():
    block = {"pck12": 60.9, "latency_ratio": 3.7, "pck12_flip": 62.1, "latency_ratio_flip": 7.2, "movenet_pck12": 56.2}
    rows = compare_movenet.tradeoff_rows({"lpn": block})
    assert rows == [{"name": "MoveNet Lightning int8", "pck12": 56.2, "latency_ratio": 1.0, "reference": True},
                    {"name": "lpn", "pck12": 60.9, "latency_ratio": 3.7},
                    {"name": "lpn, flip", "pck12": 62.1, "latency_ratio": 7.2}]


@pytest.mark.realdata
@pytest.mark.skipif(not compare_movenet.COMPARE.is_file() or importlib.util.find_spec("ai_edge_litert") is None,
                    reason="needs ../shared/peers/compare.py and ai-edge-litert")
def test_what_compare_py_prints_today_is_parsed():
    proc = subprocess.run([sys.executable, str(compare_movenet.COMPARE), "lpn_50_lsp_128x96_int8", "--limit", "10",
                           "--rounds", "3", "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    header, rows = compare_movenet.parse_compare_output(proc.stdout)
    assert header["images"] == "10" and len(rows) == 2 and rows[0]["latency_ratio"] == 1.0
