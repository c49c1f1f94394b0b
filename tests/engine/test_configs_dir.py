"""Every committed experiment config (configs/*.yaml and projects/*/configs/*.yaml) loads,
names a registered model and layout, and follows the <model>_<dataset>_<HxW>.yaml naming.
Files under a _base_ folder are bases, loaded only through the configs that name them."""

import json
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


def test_the_config_the_shipped_weights_cite_keeps_their_data():
    """lpn_50_lspet-long_128x96.yaml is the first sitting of the shipped LPN-50 weights:
    its data sets are the manifests' (the later sittings changed only training fields)."""
    cfg = load_config(REPO / "configs" / "lpn_50_lspet-long_128x96.yaml").to_dict()
    for manifest in sorted((REPO / "src" / "slimpose" / "weights").glob("lpn_50_lsp_*.json")):
        shipped = json.loads(manifest.read_text())["config"]
        assert "configs/lpn_50_lspet-long_128x96.yaml" in json.loads(manifest.read_text())["command"]
        assert cfg["data"]["train"] == shipped["data"]["train"] and cfg["data"]["val"] == shipped["data"]["val"]
        model = {k: v for k, v in cfg["model"].items() if k != "head"}  # model.head came after them, empty here
        assert cfg["model"]["head"] == {} and model == shipped["model"]
        assert cfg["data"]["layout"] == shipped["data"]["layout"]
