"""Every committed experiment config loads, names a registered model and layout, and
follows the <model>_<dataset>_<HxW>.yaml naming."""

from pathlib import Path

import pytest

from slimpose.config import load_config
from slimpose.keypoints import get_layout
from slimpose.models import get_model_entry

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_is_usable(path):
    cfg = load_config(path)
    get_model_entry(cfg.model.name)
    get_layout(cfg.data.layout)
    h, w = cfg.data.input_size
    assert path.stem.startswith(cfg.model.name + "_") and path.stem.endswith(f"_{h}x{w}")
    assert cfg.data.train.type in ("coco", "mpii", "lsp") and cfg.data.val.ann_file


def test_there_are_configs():
    assert len(CONFIGS) >= 8
