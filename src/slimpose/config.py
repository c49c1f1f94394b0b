"""Experiment configs: plain dataclasses loaded from YAML, overridable with ``--set``.

A YAML file names only what differs from the defaults below and from its bases::

    _base_: _base_/lspet.yaml          # layout and the LSP-extended train/val sets
    model: {name: lpn_50}
    data:
      input_size: [128, 96]
      train: {last: 2000}              # deep-merged over the base's data.train

Composition (``_base_``): a path, or a list of paths, relative to the file that names
it. Each base is loaded first (its own ``_base_`` too; later ones in a list win over
earlier ones) and the file's values are deep-merged over it: mappings merge key by key,
anything else (lists included) is replaced. A cycle of bases or a base that is not there
is a ConfigError naming the files. Only loading composes: a run's saved ``config.yaml``
(:func:`save_config`) is the whole, expanded config.

Data root: data paths are written under ``${data_root}``, e.g.
``ann_file: ${data_root}/lspet/joints.mat``. It is ``--data-root DIR`` on the commands
that load a config (train, eval, data show, quantize --calib-config), else the
environment variable ``SLIMPOSE_DATA_ROOT``, else ``data`` (under the working directory).
Any other ``${name}`` is a ConfigError naming the file and the field. Relative paths,
the root's included, are taken from the working directory, as in MMPose and HRNet.
(Inside a ``{...}`` flow mapping, YAML needs such a path quoted: ``{ann_file: "${data_root}/x"}``.)

Keypoint layout: ``data.layout`` names a registered layout (``coco``, the default,
``mpii``, ``lsp``) or is ``from_data``: the layout is then the keypoint category of the
COCO-format JSON ``data.train.ann_file`` (else ``data.val.ann_file``): ``categories[]``'s
``keypoints`` names and ``skeleton`` (1-based pairs). Flip pairs are read off the names
(``left_x``/``right_x``, ``l_x``/``r_x``, ``x_left``/``x_right``, ``leftX``/``rightX``, any
case, separators ``_``, ``-`` or space; unpaired joints mirror onto themselves) unless
``data.flip_pairs`` names them. OKS sigmas are ``data.oks_sigmas`` (default 0.067 per joint,
the mean of COCO's 17). PCK, reported beside AP for such a layout, is normalised by the
distance of the two joints ``data.pck_torso`` names, else by the person box's longer side.
A file whose names are exactly a registered layout's, with none of these three set,
gives that layout. Checkpoints and ONNX files carry the layout, so eval, export,
quantize and infer need only them (and the validation data)::

    data:
      layout: from_data
      flip_pairs: [[left_hand, right_hand]]   # optional
      oks_sigmas: [0.05]                      # optional: one for all joints, or one each
      pck_torso: [neck, pelvis]               # optional

Mixed training data: ``data.train_mix`` lists more training data sets, each a
``data.train``-like section (``type``, ``ann_file``, ``img_dir``, ``first``/``last``, ...)
with its own ``layout`` (a registered one; default the type's: coco, mpii, lsp) and a
sampling ``ratio``; ``data.train_ratio`` is data.train's. Each is read in its own layout
and its joints are mapped into ``data.layout`` by name (``left_knee`` to ``left_knee``;
the registered COCO, MPII and LSP layouts name their shared joints alike); a joint a data
set lacks gets target weight 0, so it adds no loss and no gradient. An epoch draws as
many crops as all sources hold together, each source its share by ratio
(:class:`slimpose.data.mixed.RatioSampler`)::

    data:
      layout: coco
      train: {type: coco, ann_file: ..., img_dir: ...}
      train_ratio: 1
      train_mix:
        - {type: lsp, ann_file: "${data_root}/lspet/joints.mat", first: 1, last: 8000, ratio: 1}

Overrides use dotted paths and YAML values: ``--set train.lr=5e-4 data.train.last=2000``;
they are applied after composition, and may use ``${data_root}`` too (quote it for the shell).
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from slimpose.errors import ConfigError
from slimpose.io import atomic_write

@dataclass
class DatasetConfig:
    type: str = "coco"  # coco | mpii | lsp (synthetic data is written in COCO format)
    ann_file: str = ""  # COCO / MPII JSON, or LSP joints.mat
    img_dir: str = ""
    headbox_file: str = ""  # MPII mpii_gt_val.mat, for PCKh
    det_file: str = ""  # COCO person-detection results JSON; empty = ground-truth boxes
    det_score_thr: float = 0.0
    # LSP image numbers, or places in a COCO-format file's images list; 1-based, inclusive
    first: int | None = None
    last: int | None = None
    limit: int | None = None  # keep only the first N person instances (quick runs)


@dataclass
class MixSourceConfig(DatasetConfig):
    """One more training data set of ``data.train_mix``: read in its own ``layout`` and
    mapped into ``data.layout`` by joint name (module docstring)."""

    layout: str = ""  # a registered layout; empty = the type's own (coco, mpii or lsp)
    ratio: float = 1.0  # its share of the draws, relative to data.train_ratio and the others'


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
    # A registered layout (coco, mpii, lsp), or from_data: the keypoint category of the
    # COCO-format data.train.ann_file (else data.val.ann_file); see the module docstring.
    layout: str = "coco"
    # from_data only. flip_pairs: [[left_x, right_x], ...] by joint name; unset (null) =
    # read off the names, [] = none. oks_sigmas: one per joint, or one for all; empty =
    # keypoints.DEFAULT_OKS_SIGMA each. pck_torso: [a, b], the joints whose distance
    # normalises PCK; empty = the box size.
    flip_pairs: tuple[tuple[str, str], ...] | None = None
    oks_sigmas: tuple[float, ...] = ()
    pck_torso: tuple[str, ...] = ()
    input_size: tuple[int, int] = (256, 192)  # H, W
    heatmap_sigma: float = 2.0
    batch_size: int = 32
    val_batch_size: int = 64
    workers: int = 2
    train: DatasetConfig = field(default_factory=DatasetConfig)
    # More training data sets, each with its own layout and a sampling ratio (module
    # docstring); data.train_ratio is data.train's share. Empty: data.train alone.
    train_mix: tuple[MixSourceConfig, ...] = ()
    train_ratio: float = 1.0
    val: DatasetConfig = field(default_factory=DatasetConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class ModelConfig:
    name: str = "tinypose"
    kwargs: dict = field(default_factory=dict)
    # Weights to start from: a checkpoint file or a shipped weight's name (e.g. ImageNet
    # RepVGG for RepNet's backbone, or lpn_50_lsp_192x144 for a COCO-17 model). Keys are
    # mapped by the model's registry weight filter, the output rows of joints both layouts
    # name are copied by name, and what does not fit is skipped and reported.
    pretrained: str = ""
    # Options of the model's training head (slimpose.heads: its loss terms and what it does
    # when a stage ends), checked by the head when the model is built; e.g. RepNet's
    # pooled-RLE head: {dense_weight: 100, teacher: auxiliary_heatmaps, refit_crops: 4000}.
    head: dict = field(default_factory=dict)


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
    # Knowledge distillation (heatmap models, engine.distill): a trained teacher with the same
    # joints (a shipped weight's name or a checkpoint) sees each augmented batch at its own input
    # size; its heatmaps take distill_weight of the target, the labels' the rest. "" = off.
    distill_from: str = ""
    distill_weight: float = 0.5
    # The teacher also sees each crop mirrored and its heatmaps average both, as the flip
    # test does: a better teacher (LPN-50: +1.4 PCK) for one more teacher pass per batch.
    distill_flip: bool = False


@dataclass
class TestConfig:
    flip: bool = True
    # one of codecs.DECODE_METHODS; empty = the model's own (models.registry.default_decode),
    # filled in when the config loads
    decode: str = ""
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
        if dataclasses.is_dataclass(item_type):  # a list of sections: name each one
            return tuple(_coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value))
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


def build_dataclass(cls, data: dict, where: str):
    """``cls`` filled from a mapping, each value checked against its field's type; errors
    name ``where.FIELD`` (how heads read their ``model.head`` options)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    return _build(cls, data, where)


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


def _check_layout(data: DataConfig) -> None:
    """``data.layout`` and its from_data options (the file itself is read when the layout
    is needed: :func:`slimpose.data.layouts.resolve_layout`)."""
    from slimpose.data.layouts import FROM_DATA, layout_file
    from slimpose.keypoints import list_layouts

    _check_choice(data.layout, [*list_layouts(), FROM_DATA], "data.layout")
    options = [f"data.{name}" for name in ("oks_sigmas", "pck_torso") if getattr(data, name)]
    options = (["data.flip_pairs"] if data.flip_pairs is not None else []) + options
    if data.layout != FROM_DATA:
        _check(not options, options[0] if options else "", f"applies to data.layout: {FROM_DATA} "
               f"(the {data.layout!r} layout has its own)")
        return
    layout_file(data)
    _check(len(data.pck_torso) in (0, 2), "data.pck_torso", f"expected two joint names, got {list(data.pck_torso)}")
    _check(all(s > 0 for s in data.oks_sigmas), "data.oks_sigmas", f"must be positive, got {list(data.oks_sigmas)}")


def _check_train_mix(data: DataConfig) -> None:
    """``data.train_mix``: each source's fields, its ratio and, where ``data.layout`` names a
    registered layout, that its layout shares joint names with it (else when the data is read)."""
    from slimpose.data.layouts import FROM_DATA, mix_source_layout
    from slimpose.keypoints import get_layout

    _check(data.train_ratio > 0, "data.train_ratio", f"must be positive, got {data.train_ratio}")
    for i, mix in enumerate(data.train_mix):
        where = f"data.train_mix[{i}]"
        _check_dataset(mix, where)
        _check(bool(mix.ann_file), f"{where}.ann_file", "not set: the annotations of this training source")
        _check(mix.ratio > 0, f"{where}.ratio", f"must be positive, got {mix.ratio}")
        if data.layout != FROM_DATA:
            mix_source_layout(mix, get_layout(data.layout), where)


def _check_data(data: DataConfig) -> None:
    _check_layout(data)
    h, w = data.input_size
    _check(h > 0 and w > 0, "data.input_size", f"must be positive (H, W), got {[h, w]}")
    _check(data.heatmap_sigma > 0, "data.heatmap_sigma", f"must be positive, got {data.heatmap_sigma}")
    _check(data.batch_size >= 1, "data.batch_size", f"must be at least 1, got {data.batch_size}")
    _check(data.val_batch_size >= 1, "data.val_batch_size", f"must be at least 1, got {data.val_batch_size}")
    _check(data.workers >= 0, "data.workers", f"must be 0 or more, got {data.workers}")
    _check_dataset(data.train, "data.train")
    _check_dataset(data.val, "data.val")
    _check_train_mix(data)
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
    for name in ("clip_grad", "val_interval", "max_iters_per_epoch", "max_minutes"):
        value = getattr(tc, name)
        _check(value >= 0, f"train.{name}", f"must be 0 or more, got {value}")
    _check(tc.log_interval >= 1, "train.log_interval", f"must be at least 1, got {tc.log_interval}")
    _check(0 < tc.distill_weight <= 1, "train.distill_weight",
           f"must lie in (0, 1] (the teacher's share of the target), got {tc.distill_weight}")


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
    from slimpose.codecs import DECODE_METHODS

    if check_model:
        _check_model_name(cfg)
    _check_data(cfg.data)
    if check_model:
        _check_output_stride(cfg)
    _check_train(cfg.train)
    if not cfg.test.decode and check_model:  # empty: the model's own (without the registry: the ONNX file's)
        from slimpose.models import default_decode

        cfg.test.decode = default_decode(cfg.model.name)
    if cfg.test.decode:
        _check_choice(cfg.test.decode, DECODE_METHODS, "test.decode")
    _check(cfg.test.beta > 0, "test.beta", f"must be positive, got {cfg.test.beta}")
    return cfg


# TrainConfig fields of slimpose 0.1.0 that became options of RepNet's pooled-RLE head
# (model.head), with their defaults then: configs, run folders and checkpoints written
# before still load, the values that differ from the defaults moved to model.head.
_MOVED_TO_HEAD = {
    "decomposed_regression_weight": ("dense_weight", 0.0),
    "decomposed_regression_sigma": ("dense_sigma", 1.0),
    "decomposed_regression_target": ("dense_target", "gaussian"),
    "decomposed_regression_norm": ("dense_norm", "mse"),
    "decomposed_regression_teacher": ("teacher", "ground_truth"),
    "auxiliary_heatmap_weight": ("heatmap_weight", 0.0),
    "head_refit_crops": ("refit_crops", 0),
    "head_refit_ridge": ("refit_ridge", 1.0),
    "head_refit_huber": ("refit_huber", 0.05),
}


# Fields added since 0.1.0, with the values that keep an older saved config's meaning:
# filled in where a config written before them lacks them.
_ADDED_FIELDS = {
    "data": {"flip_pairs": None, "oks_sigmas": [], "pck_torso": [], "train_mix": [], "train_ratio": 1.0},
}


def migrate_config_dict(data: dict) -> dict:
    """``data`` with the fields of older versions in their current place (a copy)."""
    for section, added in _ADDED_FIELDS.items():
        if isinstance(data.get(section), dict) and not set(added) <= set(data[section]):
            data = {**data, section: {**added, **data[section]}}
    train = data.get("train")
    if not isinstance(train, dict) or not set(train) & set(_MOVED_TO_HEAD):
        return data
    train = dict(train)
    model = dict(data.get("model") or {})
    head = dict(model.get("head") or {})
    for old, (new, default) in _MOVED_TO_HEAD.items():
        if old in train:
            value = train.pop(old)
            if value != default:
                head[new] = value
    model["head"] = head
    return {**data, "model": model, "train": train}


DATA_ROOT_ENV = "SLIMPOSE_DATA_ROOT"
DEFAULT_DATA_ROOT = "data"
BASE_KEY = "_base_"
_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def resolve_data_root(given: str | os.PathLike | None = None) -> str:
    """The data root: ``given`` (``--data-root``), else $SLIMPOSE_DATA_ROOT, else ``data``."""
    if given is not None and os.fspath(given) != "":
        return os.fspath(given)
    return os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT


def add_data_root_argument(parser) -> None:
    """``--data-root DIR`` for a command that loads experiment configs."""
    parser.add_argument("--data-root", metavar="DIR",
                        help=f"where the config's ${{data_root}} paths point (default: ${DATA_ROOT_ENV} if set, "
                             f"else ./{DEFAULT_DATA_ROOT})")


def _expand(value, variables: dict[str, str], where: str):
    """``value`` with ``${name}`` replaced in every string, naming the field of an unknown one."""
    if isinstance(value, dict):
        return {k: _expand(v, variables, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, variables, where) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match) -> str:
        name = match.group(1)
        if name not in variables:
            known = ", ".join(f"${{{k}}}" for k in variables)
            raise ConfigError(f"{where}: unknown variable ${{{name}}} in {value!r}; known: {known} "
                              f"(set by --data-root or {DATA_ROOT_ENV})")
        return variables[name]

    return _VARIABLE.sub(substitute, value)


def config_from_dict(data: dict, overrides: list[str] | None = None, source: str = "config",
                     data_root: str | os.PathLike | None = None, check_model: bool = True) -> ExperimentConfig:
    """The validated config of ``data`` with ``overrides`` merged in and ``${data_root}``
    expanded (``data_root``, else :func:`resolve_data_root`'s default); ``check_model``:
    see :func:`validate_config`."""
    merged = migrate_config_dict(_merge(data, parse_overrides(overrides)))
    try:
        root = resolve_data_root(data_root)
        merged = _expand(merged, {"data_root": root.rstrip("/") or "/"}, "")
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


def _read_composed(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """The YAML mapping of ``path`` deep-merged over its ``_base_`` files (recursively)."""
    here = Path(os.path.normpath(path))
    seen = [p.resolve() for p in chain]
    if here.resolve() in seen:
        loop = " -> ".join(str(p) for p in (*chain[seen.index(here.resolve()):], here))
        raise ConfigError(f"{chain[0]}: _base_ files form a cycle: {loop}")
    data = _read_yaml_mapping(here)
    bases = data.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) and b for b in bases):
        raise ConfigError(f"{here}: {BASE_KEY}: expected a path or a list of paths relative to the file, "
                          f"got {bases!r}")
    merged: dict = {}
    for base in bases:
        base_path = Path(os.path.normpath(here.parent / base))
        if not base_path.is_file():
            raise ConfigError(f"{here}: {BASE_KEY}: {base} not found (looked for {base_path})")
        merged = _merge(merged, _read_composed(base_path, (*chain, here)))
    return _merge(merged, data)


def load_config(path: str | Path, overrides: list[str] | None = None,
                data_root: str | os.PathLike | None = None, check_model: bool = True) -> ExperimentConfig:
    """An experiment YAML, composed with its ``_base_`` files, ``overrides`` applied and
    ``${data_root}`` expanded (module docstring)."""
    path = Path(path)
    return config_from_dict(_read_composed(path), overrides, source=str(path), data_root=data_root,
                            check_model=check_model)


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
    data = migrate_config_dict(_read_yaml_mapping(path))
    cfg = config_from_dict(data, source=str(path))
    missing = _missing_fields(data, cfg.to_dict())
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise ConfigError(f"{path}: {shown} missing: the file is incomplete (cut short?)")
    return cfg


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    with atomic_write(path) as f:
        f.write(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
