"""``resolve_layout``: a registered layout by name, or ``from_data``: the annotation file's
keypoint category, read once, with the config's flip pairs, sigmas and PCK torso; the
layout pinned from a checkpoint needs no file; mistakes name the file or the field."""

import json

import pytest

import slimpose.data.layouts as layouts
from slimpose.config import config_from_dict
from slimpose.data.layouts import FROM_DATA, pin_layout, resolve_layout
from slimpose.errors import ConfigError, DataError
from slimpose.keypoints import COCO17, DEFAULT_OKS_SIGMA, LSP14, layout_from_names

NAMES = ["nose", "left_hand", "right_hand", "left_foot", "right_foot"]


def write_ann(path, names=NAMES, skeleton=((1, 2), (1, 3)), **category):
    path.write_text(json.dumps({"images": [], "annotations": [], "categories": [
        {"id": 2, "name": "animal"},  # a category without keypoints is passed over
        {"id": 1, "name": "critter", "keypoints": list(names), "skeleton": [list(p) for p in skeleton], **category}]}))
    return path


def cfg_for(ann, val_ann=None, **data):
    return config_from_dict({"data": {"layout": FROM_DATA, "train": {"ann_file": str(ann) if ann else ""},
                                      "val": {"ann_file": str(val_ann or "")}, **data}})


def test_a_registered_name_gives_the_registered_layout():
    assert resolve_layout(config_from_dict({})) is COCO17
    assert resolve_layout(config_from_dict({"data": {"layout": "lsp"}}).data) is LSP14


def test_from_data_reads_the_keypoint_category_once(tmp_path, monkeypatch):
    ann = write_ann(tmp_path / "train.json")
    reads = []
    real = layouts.load_json
    monkeypatch.setattr(layouts, "load_json", lambda *a: reads.append(a) or real(*a))
    layout = resolve_layout(cfg_for(ann))
    assert layout.name == "critter" and layout.names == tuple(NAMES)
    assert layout.flip_pairs == ((1, 2), (3, 4)) and layout.skeleton == ((0, 1), (0, 2))
    assert layout.sigmas == (DEFAULT_OKS_SIGMA,) * 5 and layout.torso is None
    assert resolve_layout(cfg_for(ann)) is layout and len(reads) == 1  # another config, the same file: cached
    write_ann(ann, NAMES[:3])  # the file changed (size): read again
    assert resolve_layout(cfg_for(ann)).names == tuple(NAMES[:3]) and len(reads) == 2


def test_the_validation_file_serves_when_there_is_no_training_file(tmp_path):
    ann = write_ann(tmp_path / "val.json")
    assert resolve_layout(cfg_for(None, ann)).names == tuple(NAMES)


def test_the_config_names_flip_pairs_sigmas_and_the_pck_torso(tmp_path):
    ann = write_ann(tmp_path / "train.json")
    layout = resolve_layout(cfg_for(ann, flip_pairs=[["left_hand", "right_foot"]], oks_sigmas=[0.05],
                                    pck_torso=["nose", "left_foot"]))
    assert layout.flip_pairs == ((1, 4),) and layout.sigmas == (0.05,) * 5 and layout.torso == (0, 3)
    assert resolve_layout(cfg_for(ann, flip_pairs=[])).flip_pairs == ()
    with pytest.raises(ConfigError, match=r"data.flip_pairs: flip pair: 'tail' is not a joint name .*train.json"):
        resolve_layout(cfg_for(ann, flip_pairs=[["nose", "tail"]]))
    with pytest.raises(ConfigError, match=r"data.oks_sigmas: 2 OKS sigmas for 5 joints"):
        resolve_layout(cfg_for(ann, oks_sigmas=[0.1, 0.2]))
    with pytest.raises(ConfigError, match=r"data.pck_torso: PCK torso: 'neck' is not a joint name"):
        resolve_layout(cfg_for(ann, pck_torso=["nose", "neck"]))


def test_a_file_with_a_registered_layouts_names_gives_that_layout(tmp_path):
    ann = write_ann(tmp_path / "coco.json", COCO17.names, [])
    assert resolve_layout(cfg_for(ann)) is COCO17
    custom = resolve_layout(cfg_for(ann, oks_sigmas=[0.05]))  # options given: the file's own, named apart
    assert custom.names == COCO17.names and custom.sigmas == (0.05,) * 17 and custom.flip_pairs == COCO17.flip_pairs
    named_coco = write_ann(tmp_path / "named.json", ["a", "b"], [], name="coco")
    assert resolve_layout(cfg_for(named_coco)).name == "coco_data"


def test_a_pinned_layout_needs_no_file(tmp_path):
    cfg = cfg_for(tmp_path / "gone.json")
    with pytest.raises(DataError, match="gone.json: data.train.ann_file: file not found"):
        resolve_layout(cfg)
    stored = layout_from_names("critter", NAMES)
    pin_layout(cfg, stored.to_dict())
    assert resolve_layout(cfg) == stored
    cfg.data.oks_sigmas = (0.05,)  # the config changed since: the pin no longer applies
    with pytest.raises(DataError, match="file not found"):
        resolve_layout(cfg)
    named = config_from_dict({"data": {"layout": "lsp"}})
    pin_layout(named, stored)  # a named layout is kept
    assert resolve_layout(named) is LSP14


@pytest.mark.parametrize("category, field, message", [
    ({"keypoints": []}, "categories", "expected one category with keypoint names, found 0"),
    ({"keypoints": ["a", 3]}, r"categories\[1\].keypoints", "expected a list of joint names"),
    ({"keypoints": ["a", "b", "a"]}, r"categories\[1\].keypoints", "'a' appear twice"),
    ({"skeleton": [[0, 1]]}, r"categories\[1\].skeleton", "1-based joint numbers in 1..5"),
    ({"skeleton": [[1, 6]]}, r"categories\[1\].skeleton", "1-based joint numbers in 1..5"),
    ({"keypoints": ["left_x", "l_x", "right_x"]}, r"categories\[1\].keypoints", "same side of 'x'.*data.flip_pairs"),
])
def test_a_bad_category_names_the_file_and_field(tmp_path, category, field, message):
    ann = tmp_path / "train.json"
    write_ann(ann)
    data = json.loads(ann.read_text())
    data["categories"][1].update(category)
    ann.write_text(json.dumps(data))
    with pytest.raises(DataError, match=f"train.json: {field}: .*{message}"):
        resolve_layout(cfg_for(ann))


def test_the_config_refuses_what_from_data_cannot_use():
    with pytest.raises(ConfigError, match="data.layout: from_data needs data.train.ann_file or data.val.ann_file"):
        config_from_dict({"data": {"layout": FROM_DATA}})
    with pytest.raises(ConfigError, match="data.layout: from_data reads a COCO-format keypoint category; "
                                          "data.train.type is 'lsp'"):
        config_from_dict({"data": {"layout": FROM_DATA, "train": {"type": "lsp", "ann_file": "j.mat"}}})
    for option in ("flip_pairs=[]", "oks_sigmas=[0.1]", "pck_torso=[a,b]"):
        with pytest.raises(ConfigError, match=rf"data.{option.split('=')[0]}: applies to data.layout: from_data"):
            config_from_dict({}, [f"data.{option}"])
    with pytest.raises(ConfigError, match="data.pck_torso: expected two joint names"):
        config_from_dict({"data": {"layout": FROM_DATA, "train": {"ann_file": "a.json"}, "pck_torso": ["a"]}})
    with pytest.raises(ConfigError, match="data.oks_sigmas: must be positive"):
        config_from_dict({"data": {"layout": FROM_DATA, "train": {"ann_file": "a.json"}, "oks_sigmas": [-1]}})
