"""Complexity table: every registered model with paper figures is within its tolerance.

The sweep runs over whatever the registry holds, so each model added later is checked
against its paper's params and GMACs (training or deployed form, as published).
"""

from __future__ import annotations

import pytest
import torch.nn as nn

from slimpose.deploy.complexity import (
    GIBI,
    GIGA,
    complexity_table,
    count_macs,
    count_params,
    format_complexity_table,
)
from slimpose.models.reparam import reparameterize_model
from slimpose.models.registry import ModelEntry, PaperFigures, _REGISTRY, build_model, get_model_entry, list_models

KEYS = {"model", "input", "num_joints", "params", "params_deploy", "gmacs", "gmacs_deploy", "gmacs_2_30",
        "paper_params", "paper_gmacs", "params_diff_pct", "gmacs_diff_pct", "within_tolerance"}

WITH_FIGURES = [n for n in list_models() if get_model_entry(n).paper]


@pytest.mark.parametrize("name", WITH_FIGURES)
def test_registered_model_matches_paper(name):
    entry = get_model_entry(name)
    rows = complexity_table([name])
    assert len(rows) == len(entry.paper)
    for row, fig in zip(rows, entry.paper):
        assert KEYS <= set(row)
        assert row["input"] == f"{fig.input_size[0]}x{fig.input_size[1]}" and row["num_joints"] == fig.num_joints
        ours_p = (row["params_deploy"] if fig.form == "deploy" else row["params"]) / 1e6
        ours_g = row["gmacs_deploy"] if fig.form == "deploy" else row["gmacs"]
        msg = (f"{name} @ {row['input']} ({fig.form}): ours {ours_p:.3f}M / {ours_g:.3f} GMACs, "
               f"paper {fig.params_m}M / {fig.gmacs}; tolerance {100 * entry.tolerance:.1f}%")
        assert abs(ours_p - fig.params_m) <= entry.tolerance * fig.params_m, msg
        if fig.gmacs is not None:
            assert abs(ours_g - fig.gmacs) <= entry.tolerance * fig.gmacs, msg
        assert row["within_tolerance"] is True, msg
        assert row["gmacs_2_30"] == pytest.approx(row["gmacs"] * GIGA / GIBI)
        assert row["params_deploy"] <= row["params"]


def test_row_without_figures_and_fixed_input():
    (row,) = complexity_table(["tinypose"])
    assert row["input"] == "256x192" and row["paper_params"] is None and row["within_tolerance"] is None
    model = build_model("tinypose")
    assert row["params"] == count_params(model)
    assert row["gmacs"] == pytest.approx(count_macs(model, (256, 192)) / GIGA)
    deployed = reparameterize_model(model)
    assert row["params_deploy"] == count_params(deployed) < row["params"]  # BN folded away
    (small,) = complexity_table(["tinypose"], input_size=(128, 96))
    assert small["input"] == "128x96" and small["params"] == row["params"]
    assert small["gmacs"] == pytest.approx(row["gmacs"] / 4, rel=0.02)
    text = format_complexity_table([row, small])
    assert "tinypose" in text and "128x96" in text


class _Tiny(nn.Module):
    def __init__(self, num_joints=17, input_size=(256, 192)):
        super().__init__()
        self.conv = nn.Conv2d(3, num_joints, 1)  # 3*K + K params, 3*K MACs per pixel

    def forward(self, x):
        return self.conv(x)[:, :, ::4, ::4]


def test_paper_comparison_uses_the_published_form(monkeypatch):
    k, (h, w) = 17, (64, 48)
    params = 3 * k + k
    macs = 3 * k * h * w
    figs = (PaperFigures(params / 1e6, macs / GIGA, (h, w), k, "train"),
            PaperFigures(params / 1e6 * 1.5, macs / GIGA * 0.5, (h, w), k, "deploy"))
    monkeypatch.setitem(_REGISTRY, "_test_tiny", ModelEntry("_test_tiny", _Tiny, "heatmap", figs, 0.02))
    train_row, deploy_row = complexity_table(["_test_tiny"])
    assert train_row["within_tolerance"] is True and train_row["params_diff_pct"] == pytest.approx(0.0)
    assert deploy_row["within_tolerance"] is False
    assert deploy_row["params_diff_pct"] == pytest.approx(100 * (1 / 1.5 - 1))
    assert deploy_row["gmacs_diff_pct"] == pytest.approx(100.0)


def test_markdown_table_from_the_command(capsys):
    from slimpose.cli import main

    assert main(["complexity", "lpn_50", "tinypose", "--markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| model | input | K |") and lines[1].startswith("|---|")
    lpn = [line for line in lines if line.startswith("| `lpn_50` | 256x192 | 17 |")]
    (row,) = [r for r in complexity_table(["lpn_50"]) if r["input"] == "256x192"]
    assert lpn == [f"| `lpn_50` | 256x192 | 17 | {row['params'] / 1e6:.2f}M / {row['params_deploy'] / 1e6:.2f}M | "
                   f"{row['gmacs']:.3f} / {row['gmacs_deploy']:.3f} | 2.91M / 1.068 (train) | yes (2%) |"]
    assert lines[-1] == "| `tinypose` | 256x192 | 17 | 0.54M | 0.205 | - | - |"  # no paper: no figures, no verdict
