"""Mixed training sets (data.train_mix): joints mapped by name, sampling by ratio, config checks."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from slimpose import keypoints
from slimpose.config import config_from_dict, load_saved_config, save_config
from slimpose.data.base import DataSource
from slimpose.data.coco import CocoSource
from slimpose.data.mixed import MixedSource, RatioSampler, joint_map, ratio_counts, remap_instance
from slimpose.data.types import PersonInstance
from slimpose.errors import ConfigError, DataError
from slimpose.keypoints import get_layout, layout_from_names

COCO, LSP = get_layout("coco"), get_layout("lsp")
DATA = Path(os.environ.get("SLIMPOSE_DATA_ROOT", "data"))
COCO_MINI = DATA / "coco-mini" / "annotations" / "person_keypoints_train2017.json"
LSPET = DATA / "lspet" / "joints.mat"
needs_shared = pytest.mark.skipif(not (COCO_MINI.is_file() and LSPET.is_file()), reason="needs ../shared/data")


def _lsp_instance(seed: int = 0) -> PersonInstance:
    rng = np.random.default_rng(seed)
    kpts = rng.uniform(10, 200, size=(14, 2)).astype(np.float32)
    visible = np.ones(14, np.float32)
    visible[4] = 0.0  # left_knee unlabelled
    return PersonInstance(image_path="im.jpg", image_id=1, center=np.zeros(2), scale=np.ones(2), keypoints=kpts,
                          visible=visible, extra={"visible_flag": np.ones(14, np.int8), "bbox": np.zeros(4)})


def test_lsp_joints_land_in_the_coco_channels_of_their_names():
    inst = _lsp_instance()
    out = remap_instance(inst, joint_map(LSP, COCO))
    assert out.keypoints.shape == (17, 2) and out.visible.shape == (17,)
    shared = [n for n in COCO.names if n in LSP.names]
    assert len(shared) == 12
    for name in shared:
        t, s = COCO.names.index(name), LSP.names.index(name)
        assert np.array_equal(out.keypoints[t], inst.keypoints[s]), name
        assert out.visible[t] == inst.visible[s], name
    assert out.visible[COCO.names.index("left_knee")] == 0  # unlabelled in the source stays so
    for name in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"):  # LSP has none of these
        assert out.visible[COCO.names.index(name)] == 0 and not out.keypoints[COCO.names.index(name)].any()
    assert set(out.extra) == {"bbox"}  # LSP's per-joint flags do not fit the target layout


def test_mixed_source_parts_report_what_each_source_supplies():
    coco_src = DataSource("coco", COCO, [remap_instance(_lsp_instance(1), joint_map(LSP, COCO))] * 3)
    lsp_src = DataSource("lsp", LSP, [_lsp_instance(2)] * 5, skipped={"too_few_joints": 2})
    mixed = MixedSource(COCO)
    mixed.add("data.train", coco_src, 1.0)
    mixed.add("data.train_mix[0]", lsp_src, 3.0)
    assert len(mixed) == 8 and all(a is b for a, b in zip(mixed.instances, coco_src.instances))
    assert all(inst.keypoints.shape == (17, 2) for inst in mixed.instances)
    first, second = mixed.parts
    assert (first.start, first.stop, second.start, second.stop) == (0, 3, 3, 8)
    assert first.lacks == () and first.report(COCO).endswith("supplies 17 of the 17 coco joints")
    assert second.lacks == ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
    assert second.unused == ("neck", "head_top")
    line = second.report(COCO)
    assert "\n" not in line and line.startswith("data.train_mix[0] (lsp layout, 5 instances, ratio 3)")
    assert "supplies 12 of the 17 coco joints; lacks nose, left_eye" in line and "not used: neck, head_top" in line
    assert mixed.skipped == {"too_few_joints": 2} and "lsp: 5 instances" in mixed.summary()


def _parts(*sizes_and_ratios):
    mixed = MixedSource(COCO)
    for i, (size, ratio) in enumerate(sizes_and_ratios):
        mixed.add(f"s{i}", DataSource(f"s{i}", COCO, [None] * size), ratio)
    return mixed.parts


def _source_of(index, parts):
    return next(i for i, p in enumerate(parts) if p.start <= index < p.stop)


@pytest.mark.parametrize("ratios", [(1.0, 1.0), (3.0, 1.0), (1.0, 4.0)])
def test_sampler_draws_each_source_its_share_over_an_epoch(ratios):
    parts = _parts((400, ratios[0]), (25, ratios[1]))
    sampler = RatioSampler(parts, seed=5)
    drawn = list(sampler)
    assert len(drawn) == len(sampler) == 425
    share = Counter(_source_of(i, parts) for i in drawn)
    want = ratios[0] / sum(ratios)
    assert abs(share[0] / len(drawn) - want) < 0.01
    # a small source is cycled through whole permutations: its instances are drawn evenly
    small = Counter(i for i in drawn if _source_of(i, parts) == 1)
    assert max(small.values()) - min(small.values()) <= 1 and len(small) == 25


def test_sampler_is_deterministic_per_seed_and_epoch_and_shards_by_rank():
    parts = _parts((300, 1.0), (40, 1.0))
    a, b = RatioSampler(parts, seed=1), RatioSampler(parts, seed=1)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    assert list(RatioSampler(parts, seed=2)) != list(a)
    shards = [RatioSampler(parts, num_replicas=3, rank=r, seed=1) for r in range(3)]
    for s in shards:
        s.set_epoch(4)
    whole = RatioSampler(parts, seed=1)
    whole.set_epoch(4)
    order = list(whole)
    assert all(len(s) == len(list(s)) == 340 // 3 for s in shards)
    # the same order on every rank, each taking every third index (DistributedSampler's drop_last)
    assert [list(s) for s in shards] == [order[:339][r::3] for r in range(3)]


def test_ratio_counts_add_up():
    assert ratio_counts(10, [1, 1, 1]) == [4, 3, 3]
    assert sum(ratio_counts(8074, [1.0, 1.0])) == 8074


def _config(**mix):
    return {"model": {"name": "tinypose"}, "data": {
        "layout": "coco", "train": {"type": "coco", "ann_file": "a.json", "img_dir": "im"},
        "train_mix": [{"type": "lsp", "ann_file": "joints.mat", **mix}]}}


def test_config_reads_train_mix_and_names_the_field_of_a_bad_value():
    cfg = config_from_dict(_config(first=1, last=10, ratio=2.5))
    (mix,) = cfg.data.train_mix
    assert (mix.type, mix.layout, mix.first, mix.last, mix.ratio) == ("lsp", "", 1, 10, 2.5)
    assert cfg.data.train_ratio == 1.0
    for bad, message in ((dict(ratio=0), "data.train_mix[0].ratio: must be positive"),
                         (dict(layout="mpi"), "data.train_mix[0].layout: unknown value 'mpi'"),
                         (dict(first=0), "data.train_mix[0].first: must be at least 1"),
                         (dict(ann_file=""), "data.train_mix[0].ann_file: not set"),
                         (dict(weight=1), "data.train_mix[0]: unknown field(s) weight")):
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                           .replace(")", r"\)")):
            config_from_dict(_config(**bad))
    bad_ratio = _config()
    bad_ratio["data"]["train_ratio"] = -1
    with pytest.raises(ConfigError, match="data.train_ratio: must be positive"):
        config_from_dict(bad_ratio)


def test_a_source_that_shares_no_joint_name_is_one_config_error(monkeypatch):
    hands = layout_from_names("hands", ["thumb", "index_finger"], flip_pairs=[])
    monkeypatch.setitem(keypoints._LAYOUTS, "hands", hands)
    with pytest.raises(ConfigError) as err:
        config_from_dict(_config(layout="hands"))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("config: data.train_mix[0].layout: the 'hands' layout shares no joint name with "
                              "data.layout 'coco'")


def test_a_saved_config_from_before_train_mix_still_loads(tmp_path):
    cfg = config_from_dict({"model": {"name": "tinypose"}})
    save_config(cfg, tmp_path / "config.yaml")
    text = (tmp_path / "config.yaml").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith(("train_mix", "train_ratio"))]
    (tmp_path / "config.yaml").write_text("\n".join(lines) + "\n")
    loaded = load_saved_config(tmp_path / "config.yaml")
    assert loaded.data.train_mix == () and loaded.data.train_ratio == 1.0


@needs_shared
def test_coco_first_last_keep_a_range_of_the_files_images():
    images = str(COCO_MINI.parent.parent / "train2017")
    held_out = CocoSource(COCO_MINI, images, COCO, 0.75, train=False, first=61, last=80)
    rest = CocoSource(COCO_MINI, images, COCO, 0.75, first=1, last=60)
    whole = CocoSource(COCO_MINI, images, COCO, 0.75)
    assert len(held_out) + len(rest) == len(whole)
    assert not {i.image_id for i in held_out.instances} & {i.image_id for i in rest.instances}
    assert held_out.skipped["outside_first_last"] > 0
    # evaluation scores against the held-out images only
    assert sorted(held_out._ground_truth().getImgIds()) == sorted(held_out.kept_ids)
    with pytest.raises(DataError, match="first/last.*81..90 is not inside 1..80"):
        CocoSource(COCO_MINI, images, COCO, 0.75, first=81, last=90)


@needs_shared
def test_lspet_and_coco_mini_mix_into_coco_layout():
    from slimpose.data.dataset import build_dataset

    cfg = config_from_dict({"model": {"name": "tinypose"}, "data": {
        "layout": "coco", "input_size": [64, 48],
        "train": {"type": "coco", "ann_file": str(COCO_MINI), "img_dir": str(COCO_MINI.parent.parent / "train2017")},
        "train_mix": [{"type": "lsp", "ann_file": str(LSPET), "first": 1, "last": 30, "ratio": 1.0}]}})
    ds = build_dataset(cfg, "train", codec=None, normalize=False)
    coco_part, lsp_part = ds.source.parts
    assert lsp_part.stop - lsp_part.start == 30 and lsp_part.lacks[0] == "nose"
    item = ds.prepare(lsp_part.start)
    assert item["keypoints"].shape == (17, 2)
    assert not item["visible"][:5].any()  # no face joints on an LSPET crop
