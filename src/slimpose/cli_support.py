"""Helpers shared by the command modules (``*/commands.py``): option parsers and groups,
result files, calibration crops.

Command modules import their shared pieces from here and never from one another (nor
from :mod:`slimpose.cli`, which imports them by name only when their command runs), so
running one command imports only what that command uses. This module imports no command
module and no torch; what the heavier helpers need is imported when they are called.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING

from slimpose.errors import OutputError, SlimposeError
from slimpose.io import write_json_atomic

if TYPE_CHECKING:
    import numpy as np

_HXW = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def write_json(path: str | Path, data) -> None:
    """Write a command's result file, creating its folder; all or nothing."""
    write_json_atomic(path, data)


def plural(n: int, singular: str, plural_: str | None = None) -> str:
    """``n`` and the noun that fits it: plural(1, "person", "people") -> '1 person',
    plural(3, "image") -> '3 images'."""
    return f"{n} {singular if n == 1 else (plural_ or singular + 's')}"


# What a single output file is named like; a folder --out with one of these suffixes
# (``infer --out poses.jpg``) was meant as a file and is refused.
FILE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif",
                 ".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv",
                 ".json", ".jsonl", ".onnx", ".pth", ".pt", ".csv", ".txt", ".yaml", ".yml", ".pdf", ".svg")


def check_file_out(path: str | Path, example: str, option: str = "--out") -> Path:
    """Refuse, in one line, an ``option`` for a command that writes one file when it is
    an existing folder (or ends in a slash); ``example`` is a file name to suggest."""
    text = str(path)
    out = Path(path)
    if out.is_dir() or text.endswith(("/", "\\")):
        raise OutputError(f"{option} {text}: is a folder; this command writes one file: give a file name, "
                          f"e.g. {out / example}")
    return out


def check_folder_out(path: str | Path, example: str, option: str = "--out") -> Path:
    """Refuse, in one line, an ``option`` for a command that writes several files (a
    folder) when it is an existing file, or a new name with a file's suffix (``.jpg``,
    ``.mp4``, ``.json``, ...); ``example`` is a folder name to suggest."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{option} {path}: is a file; this command writes several files into a folder: give a "
                          f"folder name, e.g. {example}")
    if not out.exists() and out.suffix.lower() in FILE_SUFFIXES:
        raise OutputError(f"{option} {path}: looks like a file name; this command writes several files into a "
                          f"folder: give a folder name, e.g. {out.with_suffix('')}")
    return out


def parse_hxw(text: str) -> tuple[int, int]:
    """'256x192' → (256, 192); anything else is an error naming the expected form."""
    m = _HXW.match(str(text))
    if not m or int(m.group(1)) <= 0 or int(m.group(2)) <= 0:
        raise argparse.ArgumentTypeError(f"expected an input size HxW with positive integers, e.g. 256x192; got {text!r}")
    return int(m.group(1)), int(m.group(2))


# --------------------------------------------------------------------------- INT8


def add_int8_arguments(p: argparse.ArgumentParser) -> None:
    """The quantisation choices, shared by ``quantize`` and ``weights pack --int8``."""
    p.add_argument("--per-tensor", action="store_true", help="per-tensor weight scales (default per channel)")
    p.add_argument("--calibrate", default="minmax", choices=("minmax", "entropy", "percentile"))
    p.add_argument("--keep-float", nargs="+", default=[], metavar="SUBSTR",
                   help="leave the ONNX nodes whose names contain SUBSTR in float (e.g. /stem/stem.0/ for "
                        "LPN's first conv)")
    p.add_argument("--quantize-attention", action="store_true",
                   help="quantise softmax-attention modules too (default: they stay float)")
    weight_bits = p.add_mutually_exclusive_group()
    weight_bits.add_argument("--full-range", action="store_true",
                             help="8-bit weights even on an x86 CPU without VNNI (default there: 7 bits, which "
                                  "avoids saturating its U8S8 kernels; check the accuracy of the result on that CPU)")
    weight_bits.add_argument("--reduce-range", action="store_true",
                             help="7-bit weights even on a CPU with VNNI (default there: 8 bits): a file that runs "
                                  "on CPUs you do not know, e.g. one you ship, keeps its accuracy on those without")


def int8_options(args: argparse.Namespace) -> dict:
    """``quantize_int8`` keyword arguments from :func:`add_int8_arguments`' options."""
    return {"per_channel": not args.per_tensor, "calibrate_method": args.calibrate,
            "keep_float": tuple(args.keep_float), "float_attention": not args.quantize_attention,
            "reduce_range": True if args.reduce_range else False if args.full_range else None}


def spread(n_total: int, n: int) -> list[int]:
    """``n`` indices spread evenly over ``range(n_total)`` (all of them when n >= n_total)."""
    import numpy as np

    if n >= n_total:
        return list(range(n_total))
    return sorted({int(i) for i in np.linspace(0, n_total - 1, n).round()})


def calibration_crops(onnx_path, *, images_dir=None, config=None, overrides=None, num: int = 64,
                      split: str = "val", data_root=None) -> np.ndarray:
    """(M, 3, H, W) normalised crops for calibration/evaluation at the model's input size:
    whole images of a folder, or the persons of a config's ``split`` (their boxes, no
    augmentation). ``config``: a YAML path (its ``${data_root}`` is ``data_root``) or an
    ``ExperimentConfig``. Torch-free: only
    the config's data section is used, so its model section is not checked against the
    model registry."""
    import numpy as np

    from slimpose.deploy.runtime import crops_from_images, list_images, model_input, read_onnx_metadata

    meta = read_onnx_metadata(onnx_path)
    size = meta.input_size
    if images_dir:
        files = list_images(images_dir)
        return crops_from_images([files[i] for i in spread(len(files), num)], size, meta.mean, meta.std,
                                 padding=meta.box_padding, to_rgb=meta.color_order == "RGB")
    from slimpose.config import ExperimentConfig, load_config
    from slimpose.data.base import read_image
    from slimpose.data.layouts import pin_layout, resolve_layout
    from slimpose.data.sources import build_source

    cfg = config if isinstance(config, ExperimentConfig) else load_config(config, overrides, data_root, check_model=False)
    pin_layout(cfg, meta.layout)  # a from_data config: the model's layout, not the training file's
    src = build_source(getattr(cfg.data, split), resolve_layout(cfg), size, train=False)
    if not src.instances:
        raise SlimposeError(f"{config if isinstance(config, (str, Path)) else 'config'}: the {split} set has no "
                            f"person instances")
    out = []
    for i in spread(len(src.instances), num):
        inst = src.instances[i]
        out.append(model_input(read_image(inst.image_path), np.asarray([inst.center]), np.asarray([inst.scale]), meta))
    return np.concatenate(out)
