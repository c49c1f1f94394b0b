import pytest

from slimpose.config import ExperimentConfig, config_from_dict, load_config, parse_overrides, save_config
from slimpose.errors import ConfigError


def test_overrides_are_parsed_as_yaml_values():
    assert parse_overrides(["train.lr=5e-4", "data.train.last=2000", "test.flip=false"]) == {
        "train": {"lr": "5e-4"}, "data": {"train": {"last": 2000}}, "test": {"flip": False}}
    cfg = config_from_dict({"train": {"lr": 1e-3}}, ["train.lr=5e-4", "train.milestones=[3, 4]"])
    assert cfg.train.lr == pytest.approx(5e-4)
    assert cfg.train.milestones == (3, 4)


def test_unknown_field_and_bad_type_name_the_field():
    with pytest.raises(ConfigError, match=r"train: unknown field\(s\) lrr"):
        config_from_dict({"train": {"lrr": 1}})
    with pytest.raises(ConfigError, match=r"data.batch_size: expected an integer"):
        config_from_dict({}, ["data.batch_size=big"])
    with pytest.raises(ConfigError, match=r"data.input_size: expected 2 values"):
        config_from_dict({"data": {"input_size": [256, 192, 3]}})
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_overrides(["train.lr"])


def test_yaml_round_trip(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("model: {name: lpn_50}\ndata:\n  layout: lsp\n  input_size: [256, 256]\n")
    cfg = load_config(path, ["data.train.first=1"])
    assert (cfg.model.name, cfg.data.layout, cfg.data.input_size, cfg.data.train.first) == ("lpn_50", "lsp", (256, 256), 1)
    save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == cfg
    assert isinstance(cfg, ExperimentConfig)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize("override, message", [
    ("model.name=lpn50", r"model.name: unknown value 'lpn50'; known: .*lpn_50"),
    ("data.layout=coco18", r"data.layout: unknown value 'coco18'; known: coco, lsp, mpii"),
    ("data.input_size=[0,192]", r"data.input_size: must be positive"),
    ("data.input_size=[250,192]", r"data.input_size: \[250, 192\] is not divisible by 4, the output stride of tinypose"),
    ("data.batch_size=0", r"data.batch_size: must be at least 1, got 0"),
    ("data.val_batch_size=-2", r"data.val_batch_size: must be at least 1"),
    ("data.workers=-1", r"data.workers: must be 0 or more"),
    ("data.heatmap_sigma=0", r"data.heatmap_sigma: must be positive"),
    ("data.train.type=voc", r"data.train.type: unknown value 'voc'; known: coco, mpii, lsp"),
    ("data.val.det_score_thr=1.5", r"data.val.det_score_thr: must lie in \[0, 1\]"),
    ("data.train.first=0", r"data.train.first: must be at least 1"),
    ("data.augment.flip_prob=1.5", r"data.augment.flip_prob: must lie in \[0, 1\], got 1.5"),
    ("data.augment.scale_range=[1.2,0.8]", r"data.augment.scale_range: must be \[low, high\]"),
    ("train.epochs=0", r"train.epochs: must be at least 1"),
    ("train.optimizer=sgd", r"train.optimizer: unknown value 'sgd'; known: adam, adamw"),
    ("train.lr=0", r"train.lr: must be positive"),
    ("train.schedule=step", r"train.schedule: unknown value 'step'; known: multistep, cosine"),
    ("train.milestones=[120,90]", r"train.milestones: must be increasing epochs >= 1, got \[120, 90\]"),
    ("train.warmup_factor=2", r"train.warmup_factor: must lie in \[0, 1\]"),
    ("train.log_interval=0", r"train.log_interval: must be at least 1"),
    ("train.max_minutes=-1", r"train.max_minutes: must be 0 or more"),
    ("test.decode=mean", r"test.decode: unknown value 'mean'; known: argmax, dark, softargmax"),
    ("test.beta=0", r"test.beta: must be positive"),
])
def test_every_field_domain_is_checked_when_the_config_loads(override, message):
    with pytest.raises(ConfigError, match="^config: " + message):
        config_from_dict({}, [override])


def test_domain_checks_also_apply_to_yaml_files(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("train: {stages: 3, restart_epoch: 300, epochs: 150}\n")
    with pytest.raises(ConfigError, match=r"exp.yaml: train.restart_epoch: must lie in \[0, 150\)"):
        load_config(path)
    # Coordinate models have no heatmap stride to divide the input by.
    assert config_from_dict({"model": {"name": "repnet_a"}, "data": {"input_size": [66, 50]}}).data.input_size == (66, 50)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_base_files_are_deep_merged_under_the_file(tmp_path):
    write(tmp_path / "_base_" / "data.yaml",
          "data:\n  layout: lsp\n  train: {type: lsp, first: 1, last: 8000}\n  val: {type: lsp, first: 8001}\n")
    write(tmp_path / "_base_" / "recipe.yaml", "_base_: data.yaml\ntrain: {lr: 2.0e-3, milestones: [5, 6]}\n")
    write(tmp_path / "_base_" / "later.yaml", "train: {lr: 3.0e-3}\n")
    path = write(tmp_path / "exp" / "a.yaml",
                 "_base_: [../_base_/recipe.yaml, ../_base_/later.yaml]\n"
                 "data: {train: {last: 2000}}\ntrain: {milestones: [7]}\n")
    cfg = load_config(path, ["data.val.first=8500"])
    assert (cfg.data.layout, cfg.data.train.type, cfg.data.train.first, cfg.data.train.last) == ("lsp", "lsp", 1, 2000)
    assert (cfg.data.val.type, cfg.data.val.first) == ("lsp", 8500)
    assert cfg.train.lr == 3e-3  # a later base wins over an earlier one, the file over both
    assert cfg.train.milestones == (7,)  # lists are replaced, not merged
    # The saved config is whole: it loads without its bases and names no _base_.
    save_config(cfg, tmp_path / "saved.yaml")
    assert "_base_" not in (tmp_path / "saved.yaml").read_text()
    assert load_config(tmp_path / "saved.yaml") == cfg


def test_base_cycle_and_missing_base_name_the_files(tmp_path):
    a = write(tmp_path / "a.yaml", "_base_: b.yaml\n")
    write(tmp_path / "b.yaml", "_base_: [c.yaml]\n")
    write(tmp_path / "c.yaml", "_base_: ./a.yaml\n")
    with pytest.raises(ConfigError, match=r"a.yaml: _base_ files form a cycle: .*a.yaml -> .*b.yaml -> .*c.yaml -> .*a.yaml$"):
        load_config(a)
    me = write(tmp_path / "me.yaml", "_base_: me.yaml\nmodel: {name: tinypose}\n")
    with pytest.raises(ConfigError, match=r"me.yaml: _base_ files form a cycle"):
        load_config(me)
    write(tmp_path / "ok.yaml", "model: {name: tinypose}\n")
    missing = write(tmp_path / "m.yaml", "_base_: [ok.yaml, _base_/nope.yaml]\n")
    with pytest.raises(ConfigError, match=r"m.yaml: _base_: _base_/nope.yaml not found \(looked for .*nope.yaml\)"):
        load_config(missing)
    bad = write(tmp_path / "bad.yaml", "_base_: {a: 1}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: _base_: expected a path or a list of paths"):
        load_config(bad)

def test_decode_defaults_to_the_models_own(tmp_path):
    from slimpose.models.registry import build_model, default_decode, get_model_entry

    assert default_decode("lpn_50") == get_model_entry("lpn_50").info.decode == "softargmax"
    assert default_decode("tinypose") == "argmax"
    assert default_decode(build_model("lpn_50_nogc", num_joints=3)) == "softargmax"
    assert config_from_dict({"model": {"name": "lpn_50"}}).test.decode == "softargmax"
    assert config_from_dict({"model": {"name": "tinypose"}}).test.decode == "argmax"
    # a chosen decoding is kept, and the saved config holds what was used
    cfg = config_from_dict({"model": {"name": "lpn_50"}, "test": {"decode": "dark"}})
    assert cfg.test.decode == "dark"
    save_config(config_from_dict({"model": {"name": "lpn_50"}}), tmp_path / "c.yaml")
    assert "decode: softargmax" in (tmp_path / "c.yaml").read_text()


def test_a_saved_config_from_before_the_layout_options_still_loads(tmp_path):
    import yaml

    from slimpose.config import load_saved_config

    saved = ExperimentConfig().to_dict()
    for name in ("flip_pairs", "oks_sigmas", "pck_torso"):
        del saved["data"][name]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(saved))
    cfg = load_saved_config(path)
    assert (cfg.data.layout, cfg.data.flip_pairs, cfg.data.oks_sigmas, cfg.data.pck_torso) == ("coco", None, (), ())
    del saved["data"]["heatmap_sigma"]  # a field that was always there: the file is cut short
    path.write_text(yaml.safe_dump(saved))
    with pytest.raises(ConfigError, match="data.heatmap_sigma missing"):
        load_saved_config(path)
