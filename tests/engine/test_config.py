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
