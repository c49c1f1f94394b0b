"""The configs' ${data_root}: --data-root, else SLIMPOSE_DATA_ROOT, else ./data."""

from __future__ import annotations

import pytest

from slimpose.cli import main as cli_main
from slimpose.config import DATA_ROOT_ENV, load_config, resolve_data_root
from slimpose.errors import ConfigError

CONFIG = ("model: {name: tinypose}\n"
          "data:\n"
          "  train:\n"
          "    ann_file: ${data_root}/sets/train.json\n"
          "    img_dir: ${data_root}/sets/images\n")


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(CONFIG)
    return path


def test_root_defaults_to_data_under_the_working_directory(config, monkeypatch):
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    assert resolve_data_root() == "data"
    cfg = load_config(config)
    assert (cfg.data.train.ann_file, cfg.data.train.img_dir) == ("data/sets/train.json", "data/sets/images")


def test_root_from_the_environment_and_the_flag_over_it(config, monkeypatch):
    monkeypatch.setenv(DATA_ROOT_ENV, "/mnt/poses/")
    assert load_config(config).data.train.ann_file == "/mnt/poses/sets/train.json"
    assert load_config(config, data_root="elsewhere").data.train.ann_file == "elsewhere/sets/train.json"
    assert load_config(config, ["data.val.ann_file=${data_root}/v.json"]).data.val.ann_file == "/mnt/poses/v.json"
    monkeypatch.setenv(DATA_ROOT_ENV, "")  # empty is unset
    assert load_config(config).data.train.ann_file == "data/sets/train.json"


def test_unknown_variable_names_the_file_and_the_field(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("data:\n  val:\n    ann_file: ${dataroot}/v.json\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}: data.val.ann_file: unknown variable ${{dataroot}} in '${{dataroot}}/v.json'")
    assert "--data-root" in str(e.value) and DATA_ROOT_ENV in str(e.value)


def test_data_root_flag_reaches_the_config_of_train(config, tmp_path, monkeypatch):
    import slimpose.engine.train as train_module

    seen = []

    def fake_train(cfg, work_dir, **_):
        seen.append(cfg.data.train.ann_file)
        return {}

    monkeypatch.setattr(train_module, "train", fake_train)
    monkeypatch.setenv(DATA_ROOT_ENV, "from_env")
    work = str(tmp_path / "run")
    assert cli_main(["train", str(config), "--work-dir", work]) == 0
    assert cli_main(["train", str(config), "--work-dir", work, "--data-root", "from_flag"]) == 0
    assert seen == ["from_env/sets/train.json", "from_flag/sets/train.json"]


@pytest.mark.parametrize("argv", [
    ["train", "c.yaml", "--data-root", "d"],
    ["eval", "c.yaml", "--checkpoint", "x.pth", "--data-root", "d"],
    ["data", "show", "c.yaml", "--data-root", "d"],
    ["quantize", "m.onnx", "--out", "q.onnx", "--calib-config", "c.yaml", "--data-root", "d"],
])
def test_commands_that_load_configs_take_data_root(argv):
    import argparse
    import importlib

    from slimpose.cli import COMMANDS

    module = importlib.import_module(COMMANDS[argv[0]][0])
    parser = argparse.ArgumentParser()
    getattr(module, f"add_{argv[0]}_arguments")(parser)
    assert parser.parse_args(argv[1:]).data_root == "d"
