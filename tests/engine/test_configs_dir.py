"""Every committed experiment config (configs/*.yaml and projects/*/configs/*.yaml) loads,
names a registered model and layout, and follows the <model>_<dataset>_<HxW>.yaml naming.
Files under a _base_ folder are bases, loaded only through the configs that name them."""

import json
import os
import re
from pathlib import Path

import pytest

from slimpose.config import DATA_ROOT_ENV, load_config
from slimpose.keypoints import get_layout
from slimpose.models import get_model_entry

REPO = Path(__file__).resolve().parents[2]


def experiment_configs(root: Path = REPO) -> list[Path]:
    found = list((root / "configs").glob("*.yaml")) + list(root.glob("projects/*/configs/*.yaml"))
    return sorted(p for p in found if "_base_" not in p.relative_to(root).parts)


CONFIGS = experiment_configs()
# Configs that keep their literal ../shared/data paths: the one the shipped weights cite
# (so it loads as their manifests record, whatever the root) and the RepNet-A recipes
# that are moving out of configs/.
PINNED_PATHS = {"lpn_50_lspet-long_128x96.yaml"}
BASES = sorted(REPO.glob("**/_base_/*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(REPO).with_suffix("")) for p in CONFIGS])
def test_config_is_usable(path):
    cfg = load_config(path)
    get_model_entry(cfg.model.name)
    get_layout(cfg.data.layout)
    h, w = cfg.data.input_size
    assert path.stem.startswith(cfg.model.name + "_") and path.stem.endswith(f"_{h}x{w}")
    assert cfg.data.train.type in ("coco", "mpii", "lsp") and cfg.data.val.ann_file


def test_there_are_configs():
    assert len(CONFIGS) >= 8
    assert {p.name for p in BASES} >= {"lspet.yaml", "coco.yaml", "mpii.yaml"}


def test_projects_configs_are_picked_up_and_bases_skipped(tmp_path):
    for name in ("configs/a_x_1x1.yaml", "configs/_base_/x.yaml", "projects/p/configs/b_x_1x1.yaml",
                 "projects/p/configs/_base_/y.yaml", "projects/p/other/c.yaml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert [p.relative_to(tmp_path).as_posix() for p in experiment_configs(tmp_path)] == [
        "configs/a_x_1x1.yaml", "projects/p/configs/b_x_1x1.yaml"]


@pytest.mark.parametrize("path", [p for p in CONFIGS if "lspet" in p.stem], ids=lambda p: p.stem)
def test_lspet_configs_read_the_data_root(path, monkeypatch):
    monkeypatch.setenv(DATA_ROOT_ENV, "/somewhere/data")
    cfg = load_config(path)
    root = "../shared/data" if path.name in PINNED_PATHS else "/somewhere/data"
    for split, (first, last) in (("train", (1, 8000)), ("val", (8001, 9000))):
        ds = getattr(cfg.data, split)
        assert (ds.ann_file, ds.img_dir) == (f"{root}/lspet/joints.mat", f"{root}/lspet/images")
        assert (ds.type, ds.first, ds.last) == ("lsp", first, last)


def _data_sets(cfg: dict) -> list[dict]:
    """The train and val sets with their paths made absolute from the clone's root."""
    return [{k: os.path.normpath(REPO / v) if k in ("ann_file", "img_dir") and v else v
             for k, v in cfg["data"][split].items()} for split in ("train", "val")]


def test_the_configs_the_shipped_weights_cite_keep_their_data(monkeypatch):
    """The config a shipped LSP weight's command starts from (the first sitting; later
    sittings changed only training fields) still holds the manifest's data sets and model,
    and weights fine-tuned from another shipped weight name its checkpoint."""
    shipped_dir = REPO / "src" / "slimpose" / "weights"
    monkeypatch.chdir(REPO)
    monkeypatch.setenv(DATA_ROOT_ENV, "../shared/data")  # what the runs were given (--data-root)
    for manifest_path in sorted(shipped_dir.glob("lpn_50_lsp_*.json")):
        manifest = json.loads(manifest_path.read_text())
        shipped = manifest["config"]
        cited = re.search(r"configs/\S+\.yaml", manifest["command"])
        assert cited, f"{manifest_path.name}: its command names no config"
        cfg = load_config(REPO / cited.group()).to_dict()
        assert _data_sets(cfg) == _data_sets(shipped)
        assert cfg["data"]["layout"] == shipped["data"]["layout"] and cfg["model"]["name"] == shipped["model"]["name"]
        start = shipped["model"]["pretrained"]
        assert not start or (REPO / start).parent == shipped_dir and (REPO / start).is_file()
