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
from slimpose.io import atomic_write

# Dense targets, per-position errors and sources of the joint of
# losses.DecomposedRegressionLoss (train.decomposed_regression_target, _norm, _teacher).
DECOMPOSED_TARGET_FORMS = ("gaussian", "displacement", "half_plane")
DECOMPOSED_NORMS = ("mse", "l1")
DECOMPOSED_TEACHERS = ("ground_truth", "auxiliary_heatmaps")


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
    # Weights to start from (e.g. ImageNet RepVGG for RepNet's backbone): keys are mapped
    # by the model's registry weight filter and what does not fit is skipped and reported.
    pretrained: str = ""


@dataclass
class TrainConfig:
    epochs: int = 210
    optimizer: str = "adam"  # adam | adamw
    # PyTorch's fused Adam kernel on CPU and CUDA: the same update, several times cheaper.
    # false reproduces runs recorded before it was the default bit for bit.
    fused_optimizer: bool = True
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
    # Pooled-regression models (RepNet): weight of the dense form of the regression
    # (losses.DecomposedRegressionLoss) beside RLE, its target field (DECOMPOSED_TARGET_FORMS),
    # the Gaussian field's sigma in feature-map cells, the per-position error (DECOMPOSED_NORMS)
    # and where the field puts the joint (DECOMPOSED_TEACHERS). auxiliary_heatmap_weight
    # trains the model's training-only heatmap decoder (model.kwargs.auxiliary_heatmaps,
    # losses.AuxiliaryHeatmapLoss) on Gaussians of data.heatmap_sigma.
    decomposed_regression_weight: float = 0.0
    decomposed_regression_sigma: float = 1.0
    decomposed_regression_target: str = "gaussian"
    decomposed_regression_norm: str = "mse"
    decomposed_regression_teacher: str = "ground_truth"
    auxiliary_heatmap_weight: float = 0.0
    # Pooled-regression models: when a stage ends, refit the final Linear's coordinate rows
    # by ridge regression (penalty head_refit_ridge), Huber-robust beyond head_refit_huber of
    # the crop (0 = plain least squares), to the teacher's joints on this many training crops
    # and their mirror images, cropped as at test time (engine.refit); 0 crops = off.
    head_refit_crops: int = 0
    head_refit_ridge: float = 1.0
    head_refit_huber: float = 0.05
    # Exponential moving average of the weights (engine.ema): what is validated, checkpointed
    # as "model" and exported. Per-step decay, 0 = off (0.998 spans ~500 steps once past its
    # ramp); updated every ema_interval steps with decay ** ema_interval.
    ema_decay: float = 0.0
    ema_interval: int = 1
    amp: bool = False  # mixed precision, CUDA only
    channels_last: bool = False  # NHWC weights and batches
    compile: bool = False  # torch.compile the training forward/backward
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


# The values the engine understands for the config's named choices.
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("multistep", "cosine")
DATASET_TYPES = ("coco", "mpii", "lsp", "synthetic", "lspet")  # the last two are aliases of coco and lsp


def _check(ok: bool, where: str, problem: str) -> None:
    if not ok:
        raise ConfigError(f"{where}: {problem}")


def _check_choice(value: str, known, where: str) -> None:
    _check(value in known, where, f"unknown value {value!r}; known: {', '.join(known)}")


def _check_probability(value: float, where: str) -> None:
    _check(0.0 <= value <= 1.0, where, f"must lie in [0, 1], got {value}")


def _check_dataset(ds: DatasetConfig, where: str) -> None:
    _check_choice(ds.type.lower(), DATASET_TYPES, f"{where}.type")
    _check_probability(ds.det_score_thr, f"{where}.det_score_thr")
    for name in ("first", "last", "limit"):
        value = getattr(ds, name)
        _check(value is None or value >= 1, f"{where}.{name}", f"must be at least 1, got {value}")
    if ds.first is not None and ds.last is not None:
        _check(ds.first <= ds.last, f"{where}.last", f"{ds.last} comes before first={ds.first}")


def _check_data(data: DataConfig) -> None:
    from slimpose.keypoints import list_layouts

    _check_choice(data.layout, list_layouts(), "data.layout")
    h, w = data.input_size
    _check(h > 0 and w > 0, "data.input_size", f"must be positive (H, W), got {[h, w]}")
    _check(data.heatmap_sigma > 0, "data.heatmap_sigma", f"must be positive, got {data.heatmap_sigma}")
    _check(data.batch_size >= 1, "data.batch_size", f"must be at least 1, got {data.batch_size}")
    _check(data.val_batch_size >= 1, "data.val_batch_size", f"must be at least 1, got {data.val_batch_size}")
    _check(data.workers >= 0, "data.workers", f"must be 0 or more, got {data.workers}")
    _check_dataset(data.train, "data.train")
    _check_dataset(data.val, "data.val")
    aug = data.augment
    for name in ("flip_prob", "half_body_prob", "rotation_prob", "shift_prob"):
        _check_probability(getattr(aug, name), f"data.augment.{name}")
    lo, hi = aug.scale_range
    _check(0 < lo <= hi, "data.augment.scale_range", f"must be [low, high] with 0 < low <= high, got {[lo, hi]}")
    _check(aug.rotation >= 0, "data.augment.rotation", f"must be 0 or more degrees, got {aug.rotation}")
    _check(aug.shift_factor >= 0, "data.augment.shift_factor", f"must be 0 or more, got {aug.shift_factor}")
    _check(aug.half_body_min_keypoints >= 0, "data.augment.half_body_min_keypoints",
           f"must be 0 or more, got {aug.half_body_min_keypoints}")


def _check_train(tc: TrainConfig) -> None:
    _check(tc.epochs >= 1, "train.epochs", f"must be at least 1, got {tc.epochs}")
    _check_choice(tc.optimizer, OPTIMIZERS, "train.optimizer")
    _check(tc.lr > 0, "train.lr", f"must be positive, got {tc.lr}")
    _check(tc.weight_decay >= 0, "train.weight_decay", f"must be 0 or more, got {tc.weight_decay}")
    _check_choice(tc.schedule, SCHEDULES, "train.schedule")
    steps = list(tc.milestones)
    _check(all(m >= 1 for m in steps) and all(a < b for a, b in zip(steps, steps[1:])), "train.milestones",
           f"must be increasing epochs >= 1, got {steps}")
    _check(tc.gamma > 0, "train.gamma", f"must be positive, got {tc.gamma}")
    _check(tc.warmup_iters >= 0, "train.warmup_iters", f"must be 0 or more, got {tc.warmup_iters}")
    _check_probability(tc.warmup_factor, "train.warmup_factor")
    _check(0 <= tc.min_lr <= tc.lr, "train.min_lr", f"must lie in [0, train.lr={tc.lr}], got {tc.min_lr}")
    _check(tc.stages >= 1, "train.stages", f"must be at least 1, got {tc.stages}")
    _check(tc.stages == 1 or 0 <= tc.restart_epoch < tc.epochs, "train.restart_epoch",
           f"must lie in [0, {tc.epochs}) for an iterative schedule, got {tc.restart_epoch}")
    _check(tc.decomposed_regression_sigma > 0, "train.decomposed_regression_sigma",
           f"must be positive, got {tc.decomposed_regression_sigma}")
    _check(tc.decomposed_regression_target in DECOMPOSED_TARGET_FORMS, "train.decomposed_regression_target",
           f"must be one of {', '.join(DECOMPOSED_TARGET_FORMS)}, got {tc.decomposed_regression_target!r}")
    _check(tc.decomposed_regression_norm in DECOMPOSED_NORMS, "train.decomposed_regression_norm",
           f"must be one of {', '.join(DECOMPOSED_NORMS)}, got {tc.decomposed_regression_norm!r}")
    _check(tc.decomposed_regression_teacher in DECOMPOSED_TEACHERS, "train.decomposed_regression_teacher",
           f"must be one of {', '.join(DECOMPOSED_TEACHERS)}, got {tc.decomposed_regression_teacher!r}")
    _check(tc.decomposed_regression_teacher != "auxiliary_heatmaps" or tc.auxiliary_heatmap_weight > 0,
           "train.decomposed_regression_teacher",
           "'auxiliary_heatmaps' needs the heatmaps trained: set train.auxiliary_heatmap_weight above 0")
    _check(tc.head_refit_ridge > 0, "train.head_refit_ridge", f"must be positive, got {tc.head_refit_ridge}")
    for name in ("clip_grad", "decomposed_regression_weight", "auxiliary_heatmap_weight", "val_interval",
                 "max_iters_per_epoch", "max_minutes", "head_refit_crops", "head_refit_huber"):
        value = getattr(tc, name)
        _check(value >= 0, f"train.{name}", f"must be 0 or more, got {value}")
    _check(tc.log_interval >= 1, "train.log_interval", f"must be at least 1, got {tc.log_interval}")


def _check_model_name(cfg: ExperimentConfig) -> None:
    from slimpose.models import list_models

    _check_choice(cfg.model.name, list_models(), "model.name")


def _check_output_stride(cfg: ExperimentConfig) -> None:
    from slimpose.models import get_model_entry

    h, w = cfg.data.input_size
    stride = get_model_entry(cfg.model.name).info.output_stride
    _check(stride is None or (h % stride == 0 and w % stride == 0), "data.input_size",
           f"{[h, w]} is not divisible by {stride}, the output stride of {cfg.model.name}")


def validate_config(cfg: ExperimentConfig, check_model: bool = True) -> ExperimentConfig:
    """Check every field's domain, so a bad value fails when the config loads, with its
    name, rather than as a traceback deep in training.

    ``check_model=False`` leaves out the checks that import the model registry, and with
    it torch (``model.name`` is registered, ``data.input_size`` is a multiple of its
    output stride): for the torch-free commands (``eval --onnx``, INT8 calibration), which
    read the data and test sections and take the model from an ONNX file."""
    from slimpose.codecs.heatmap import DECODE_METHODS

    if check_model:
        _check_model_name(cfg)
    _check_data(cfg.data)
    if check_model:
        _check_output_stride(cfg)
    _check_train(cfg.train)
    _check_choice(cfg.test.decode, DECODE_METHODS, "test.decode")
    _check(cfg.test.beta > 0, "test.beta", f"must be positive, got {cfg.test.beta}")
    return cfg


def config_from_dict(data: dict, overrides: list[str] | None = None, source: str = "config",
                     check_model: bool = True) -> ExperimentConfig:
    """The config of ``data`` with ``overrides`` applied, validated (see
    :func:`validate_config` for ``check_model``)."""
    merged = _merge(data, parse_overrides(overrides))
    try:
        return validate_config(_build(ExperimentConfig, merged, ""), check_model=check_model)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def _read_yaml_mapping(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text()
    if not text.strip():
        raise ConfigError(f"{path}: the file is empty")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_config(path: str | Path, overrides: list[str] | None = None, check_model: bool = True) -> ExperimentConfig:
    path = Path(path)
    return config_from_dict(_read_yaml_mapping(path), overrides, source=str(path), check_model=check_model)


def _missing_fields(written: dict, complete: dict, prefix: str = "") -> list[str]:
    missing = []
    for key, value in complete.items():
        if key not in written:
            missing.append(prefix + key)
        elif isinstance(value, dict) and value and isinstance(written[key], dict):
            missing += _missing_fields(written[key], value, f"{prefix}{key}.")
    return missing


def load_saved_config(path: str | Path) -> ExperimentConfig:
    """A config that :func:`save_config` wrote (a run's ``config.yaml``): every field must be
    there, so a file cut short is refused instead of read as the defaults."""
    path = Path(path)
    data = _read_yaml_mapping(path)
    cfg = config_from_dict(data, source=str(path))
    missing = _missing_fields(data, cfg.to_dict())
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise ConfigError(f"{path}: {shown} missing: the file is incomplete (cut short?)")
    return cfg


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    with atomic_write(path) as f:
        f.write(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
