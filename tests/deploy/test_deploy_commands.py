"""slimpose.deploy.commands: models, export/quantize --out."""

from __future__ import annotations

import json

from slimpose.cli import main
from slimpose.weights import list_weights


def test_models_marks_the_models_with_shipped_weights(tmp_path, capsys):
    shipped = {w.model: w.name for w in list_weights()}
    assert shipped, "the package ships weights"
    assert main(["models", "--json", str(tmp_path / "models.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "shipped weights" in lines[0]
    rows = {r["model"]: r for r in json.loads((tmp_path / "models.json").read_text())}
    for model, row in rows.items():
        line = next(x for x in lines if x.split()[:1] == [model])
        if model in shipped:
            assert shipped[model] in row["shipped_weights"] and shipped[model] in line
        else:
            assert row["shipped_weights"] == [] and line.split()[2] == "-"
