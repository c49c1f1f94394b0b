"""Experiment configs: plain dataclasses loaded from YAML, overridable with ``--set``.

A YAML file names only what differs from the defaults below::

    model: {name: lpn_50}
    data:
      layout: lsp
      input_size: [256, 192]
      train: {type: lsp, ann_file: ../shared/data/lspet/joints.mat, img_dir: ..., first: 1, last: 8000}

Overrides use dotted paths and YAML values: ``--set train.lr=5e-4 data.train.last=2000``.
Relative data paths are taken from the working directory, as in MMPose and HRNet.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from slimpose.errors import ConfigError


@dataclass
class DatasetConfig:
    type: str = "coco"  # coco | mpii | lsp (synthetic data is written in COCO format)
    ann_file: str = ""  # COCO / MPII JSON, or LSP joints.mat
    img_dir: str = ""
    headbox_file: str = ""  # MPII mpii_gt_val.mat, for PCKh
    det_file: str = ""  # COCO person-detection results JSON; empty = ground-truth boxes
    det_score_thr: float = 0.0
    first: int | None = None  # LSP image-number range, 1-based, inclusive
    last: int | None = None
    limit: int | None = None  # keep only the first N person instances (quick runs)


@dataclass
class AugmentConfig:
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_keypoints: int = 8
    scale_range: tuple[float, float] = (0.75, 1.25)
    rotation: float = 40.0  # degrees, drawn from a normal clipped to +-2 sigma as HRNet does
    rotation_prob: float = 0.6
    shift_factor: float = 0.0  # box-centre shift as a fraction of the box size
    shift_prob: float = 0.3


@dataclass
class DataConfig:
    layout: str = "coco"
    input_size: tuple[int, int] = (256, 192)  # H, W
    heatmap_sigma: float = 2.0
    batch_size: int = 32
    val_batch_size: int = 64
    workers: int = 2
    train: DatasetConfig = field(default_factory=DatasetConfig)
    val: DatasetConfig = field(default_factory=DatasetConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class ModelConfig:
    name: str = "tinypose"
    kwargs: dict = field(default_factory=dict)


@dataclass
class TrainConfig:
    epochs: int = 210
    optimizer: str = "adam"  # adam | adamw
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "multistep"  # multistep | cosine
    milestones: tuple[int, ...] = (170, 200)
    gamma: float = 0.1
    warmup_iters: int = 0  # linear warm-up from warmup_factor * lr
    warmup_factor: float = 0.001
    min_lr: float = 0.0  # cosine floor
    # LPN's iterative training: `stages` runs of the schedule, each later one starting
    # from the previous stage's best checkpoint with the lr reset at `restart_epoch`.
    stages: int = 1
    restart_epoch: int = 0
    clip_grad: float = 0.0  # max gradient norm; 0 = off
    amp: bool = False  # mixed precision, CUDA only
    val_interval: int = 10  # epochs; 0 = validate only at the end
    save_metric: str = ""  # metric that picks `best`; empty = the data set's main metric
    seed: int = 0
    deterministic: bool = False
    log_interval: int = 20  # iterations between progress-bar updates
    max_iters_per_epoch: int = 0  # cap for quick runs; 0 = whole epoch
    # Wall-clock budget: past it, training stops after the current iteration, then
    # validates and saves as at the end of a run. 0 = no budget.
    max_minutes: float = 0.0


@dataclass
class TestConfig:
    flip: bool = True
    decode: str = "argmax"  # argmax | dark | softargmax
    beta: float = 160.0  # softargmax temperature


@dataclass
class ExperimentConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: TestConfig = field(default_factory=TestConfig)

    def to_dict(self) -> dict:
        return _plain(asdict(self))


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _coerce(value, annotation, where: str):
    """Check and convert a YAML value to a field's type, naming the field on failure."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _build(annotation, value, where)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_type = args[0] if args else typing.Any
        if len(args) == 2 and args[1] is not Ellipsis and len(value) != 2:
            raise ConfigError(f"{where}: expected 2 values, got {value!r}")
        return tuple(_coerce(v, item_type, where) for v in value)
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads "5e-4" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _build(cls, data: dict, where: str):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_overrides(overrides: list[str] | None) -> dict:
    """``["train.lr=5e-4", "data.train.last=2000"]`` → nested dict of YAML-parsed values."""
    tree: dict = {}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.lr=5e-4")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({e})") from None
        node = tree
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return tree


def config_from_dict(data: dict, overrides: list[str] | None = None, source: str = "config") -> ExperimentConfig:
    merged = _merge(data, parse_overrides(overrides))
    try:
        return _build(ExperimentConfig, merged, "")
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return config_from_dict(data, overrides, source=str(path))


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
