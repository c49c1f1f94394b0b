"""The keypoint layout of a config: :func:`resolve_layout`, the one place that turns
``data.layout`` into a :class:`~slimpose.keypoints.KeypointLayout`.

``data.layout`` names a registered layout (coco, mpii, lsp, ...) or is ``from_data``:
then the layout is the keypoint category of the COCO-format JSON ``data.train.ann_file``
(else ``data.val.ann_file``): its ``keypoints`` names, its ``skeleton`` (1-based pairs),
flip pairs read off the names unless ``data.flip_pairs`` names them, OKS sigmas
``data.oks_sigmas`` (default :data:`~slimpose.keypoints.DEFAULT_OKS_SIGMA` per joint),
and ``data.pck_torso`` (two joint names whose distance normalises PCK; default: the box
size). A file whose names are exactly a registered layout's (COCO 2017, the synthetic
data), with none of those three fields set, gives that layout.

The file is read once per version of it (path, size, modification time and the three
fields are the cache key). Where the layout travelled with the weights (a checkpoint's
``meta.layout``, an ONNX file's metadata), :func:`pin_layout` makes it the config's, so
evaluation, calibration and export need no training annotations.

:func:`mix_source_layout` is the layout a ``data.train_mix`` source is read in (torch-free,
so the config checks it without importing the training data code).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from slimpose.data.base import load_json
from slimpose.errors import ConfigError, DataError
from slimpose.keypoints import (
    KeypointLayout,
    flip_pairs_from_names,
    get_layout,
    layout_from_names,
    list_layouts,
)

FROM_DATA = "from_data"
_PIN = "_slimpose_pinned_layout"  # attribute of a DataConfig instance (not a field: never saved)
COCO_TYPES = ("coco", "synthetic")


def _data_section(cfg):
    return getattr(cfg, "data", cfg)


def _options(data) -> tuple:
    pairs = None if data.flip_pairs is None else tuple(tuple(p) for p in data.flip_pairs)
    return pairs, tuple(data.oks_sigmas), tuple(data.pck_torso)


def layout_file(cfg) -> tuple[str, str]:
    """(path, config field) of the annotations a ``from_data`` layout is read from."""
    data = _data_section(cfg)
    for split in ("train", "val"):
        ds = getattr(data, split)
        if ds.ann_file:
            if (ds.type or "").lower() not in COCO_TYPES:
                raise ConfigError(f"data.layout: {FROM_DATA} reads a COCO-format keypoint category; "
                                  f"data.{split}.type is {ds.type!r}")
            return ds.ann_file, f"data.{split}.ann_file"
    raise ConfigError(f"data.layout: {FROM_DATA} needs data.train.ann_file or data.val.ann_file (a COCO-format JSON "
                      "whose keypoint category defines the layout)")


def resolve_layout(cfg) -> KeypointLayout:
    """The keypoint layout of an ``ExperimentConfig`` (or its ``DataConfig``): the
    registered one ``data.layout`` names, or for ``from_data`` the one pinned to the config
    (:func:`pin_layout`), else the annotation file's (module docstring), read once."""
    data = _data_section(cfg)
    if data.layout != FROM_DATA:
        try:
            return get_layout(data.layout)
        except KeyError:
            raise ConfigError(f"data.layout: unknown value {data.layout!r}; known: "
                              f"{', '.join([*list_layouts(), FROM_DATA])}") from None
    pinned = getattr(data, _PIN, None)
    if pinned is not None and pinned[0] == _options(data):
        return pinned[1]
    path, field_name = layout_file(data)
    try:
        st = os.stat(path)
        version = (st.st_size, st.st_mtime_ns)
    except OSError:
        raise DataError(path, field_name, "file not found (data.layout: from_data reads the keypoint names "
                        "from it)") from None
    return _layout_of_file(str(Path(path).resolve()), version, path, field_name, *_options(data))


def pin_layout(cfg, layout: KeypointLayout | dict | None) -> None:
    """Make ``layout`` (a layout or its ``to_dict()``; None: nothing) the ``from_data``
    layout of ``cfg``: the one stored with the weights, so the annotations need not be read.
    A config that names a registered layout keeps it."""
    data = _data_section(cfg)
    if layout is None or data.layout != FROM_DATA:
        return
    if isinstance(layout, dict):
        try:
            layout = KeypointLayout.from_dict(layout)
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"data.layout: {FROM_DATA}: the layout stored with the weights is not a keypoint "
                              f"layout ({e})") from None
    setattr(data, _PIN, (_options(data), layout))


def _keypoint_category(doc, path: str, field_name: str) -> tuple[int, dict]:
    cats = doc.get("categories") if isinstance(doc, dict) else None
    if not isinstance(cats, list):
        raise DataError(path, "categories", f"missing or not a list ({field_name} with data.layout: {FROM_DATA})")
    found = [(i, c) for i, c in enumerate(cats) if isinstance(c, dict) and c.get("keypoints")]
    if len(found) != 1:
        raise DataError(path, "categories", f"expected one category with keypoint names, found {len(found)} "
                        f"(data.layout: {FROM_DATA})")
    return found[0]


@functools.lru_cache(maxsize=16)
def _layout_of_file(resolved: str, version: tuple, path: str, field_name: str, flip_pairs, oks_sigmas,
                    pck_torso) -> KeypointLayout:
    i, cat = _keypoint_category(load_json(path, field_name), path, field_name)
    where = f"categories[{i}]"
    names = cat["keypoints"]
    if not (isinstance(names, list) and all(isinstance(n, str) and n.strip() for n in names)):
        raise DataError(path, f"{where}.keypoints", "expected a list of joint names")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataError(path, f"{where}.keypoints", f"joint name(s) {', '.join(map(repr, twice))} appear twice")
    k = len(names)
    skeleton = cat.get("skeleton") or []
    if not (isinstance(skeleton, list) and all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(j, int) and not isinstance(j, bool) and 1 <= j <= k
                                                        for j in p) for p in skeleton)):
        raise DataError(path, f"{where}.skeleton", f"expected pairs of 1-based joint numbers in 1..{k}")
    if flip_pairs is None:
        try:
            flip_pairs_from_names(names)
        except ValueError as e:
            raise DataError(path, f"{where}.keypoints", f"{e} (data.flip_pairs)") from None
    if flip_pairs is None and not oks_sigmas and not pck_torso:
        for known in list_layouts():
            if get_layout(known).names == tuple(names):
                return get_layout(known)
    name = cat.get("name") if isinstance(cat.get("name"), str) and cat.get("name") else "custom"
    if name in list_layouts():
        name = f"{name}_data"
    try:
        return layout_from_names(name, names, [(a - 1, b - 1) for a, b in skeleton], flip_pairs=flip_pairs,
                                 sigmas=oks_sigmas or None, torso=pck_torso or None)
    except ValueError as e:
        field_of = {"flip pair": "data.flip_pairs", "PCK torso": "data.pck_torso"}
        option = next((f for key, f in field_of.items() if str(e).startswith(key)), "data.oks_sigmas")
        raise ConfigError(f"{option}: {e} (the joints of {path})") from None


# The layout a data set type is read in when its train_mix entry names none.
TYPE_LAYOUTS = {"coco": "coco", "synthetic": "coco", "mpii": "mpii", "lsp": "lsp", "lspet": "lsp"}


def mix_source_layout(ds, target: KeypointLayout, where: str) -> KeypointLayout:
    """The layout a ``data.train_mix`` entry is read in; a ConfigError naming ``where``'s
    field if it is unknown or shares no joint name with ``target``."""
    name = ds.layout or TYPE_LAYOUTS.get((ds.type or "").lower(), "")
    if name not in list_layouts():
        raise ConfigError(f"{where}.layout: unknown value {name!r}; known: {', '.join(list_layouts())}")
    layout = get_layout(name)
    if not set(layout.names) & set(target.names):
        raise ConfigError(f"{where}.layout: the {name!r} layout shares no joint name with data.layout "
                          f"{target.name!r} ({', '.join(target.names)})")
    return layout
