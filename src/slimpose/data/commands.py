"""``slimpose data synthetic``, ``slimpose data show`` and ``slimpose data convert``."""

from __future__ import annotations

import argparse
import time

from slimpose.cli_support import check_file_out, check_folder_out, plural


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    from slimpose.config import add_data_root_argument

    sub = parser.add_subparsers(dest="data_command", metavar="{synthetic,show,convert}")
    sub.required = True
    p = sub.add_parser("synthetic", help="write a synthetic COCO-format keypoint data set")
    p.add_argument("--out", required=True, help="output folder (train/, val/, annotations/)")
    p.add_argument("--num-train", type=int, default=1000, help="training images (default 1000)")
    p.add_argument("--num-val", type=int, default=200, help="validation images (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, nargs=2, default=(320, 256), metavar=("W", "H"),
                   help="image width and height (default 320 256)")
    p = sub.add_parser("show", help="picture of augmented crops with their keypoints")
    p.add_argument("config", help="experiment YAML")
    p.add_argument("--split", choices=("train", "val"), default="train")
    p.add_argument("--num", type=int, default=16, help="number of crops (default 16)")
    p.add_argument("--out", default=None, help="PNG path (default data_show_<split>.png)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides, e.g. data.layout=lsp")
    add_data_root_argument(p)
    _add_convert_arguments(sub)


def run_data(args: argparse.Namespace) -> int:
    if args.data_command == "synthetic":
        from slimpose.data.synthetic import generate_synthetic_coco

        if args.num_train < 0 or args.num_val < 0:
            raise SystemExit("slimpose data synthetic: --num-train and --num-val must be >= 0")
        check_folder_out(args.out, "data/synthetic")
        start = time.perf_counter()
        paths = generate_synthetic_coco(args.out, args.num_train, args.num_val, args.seed, tuple(args.size))
        print(f"wrote {plural(args.num_train + args.num_val, 'image')} ({args.num_train} train, {args.num_val} val) "
              f"in {time.perf_counter() - start:.1f} s")
        for key in ("train_ann", "train_images", "val_ann", "val_images"):
            print(f"  {key}: {paths[key]}")
        return 0
    if args.data_command == "show":
        from slimpose.config import load_config
        from slimpose.data.show import show

        out = args.out or f"data_show_{args.split}.png"
        check_file_out(out, f"data_show_{args.split}.png")
        cfg = load_config(args.config, args.set, args.data_root)
        path = show(cfg, args.split, args.num, out, args.seed)
        print(f"wrote {path}")
        return 0
    if args.data_command == "convert":
        return _run_convert(args)
    raise SystemExit(f"slimpose data: unknown sub-command {args.data_command!r}")


# ----------------------------------------------------------------------------- data convert
def _add_convert_arguments(sub) -> None:
    from slimpose.data.convert import BOX_MARGIN, FORMATS

    p = sub.add_parser("convert", help="labelme or CVAT keypoint annotations as a COCO-keypoints JSON, or a COCO "
                       "file cut to some joints",
                       description="Convert keypoint annotations of a labelling tool to a COCO-keypoints JSON that "
                       "the 'coco' data type reads. labelme: a folder of one JSON per image; CVAT: a 'CVAT for "
                       "images 1.1' XML (skeletons or points). A person is a group_id (or a CVAT skeleton); a "
                       "point is v=2, an occluded one v=1. Without a rectangle/box a person's box is its joints' "
                       f"box grown by {BOX_MARGIN:.0%} of its longer side on each side, clipped to the image. coco: a COCO-keypoints "
                       "file cut to the joints --keypoints names (a new layout from an existing data set).")
    p.add_argument("input", metavar="INPUT", help="labelme: the folder of JSON files; cvat: the XML file; coco: the "
                   "COCO-keypoints JSON")
    p.add_argument("--from", dest="fmt", required=True, choices=FORMATS, help="the labelling tool's format")
    p.add_argument("--out", required=True, help="the COCO JSON to write (kept if it exists, unless --overwrite)")
    p.add_argument("--keypoints", default=None, metavar="A,B,C",
                   help="joint names in order (coco: the joints to keep, required; default: a CVAT skeleton "
                   "label's points, else the point labels in the order they first occur)")
    p.add_argument("--skeleton", default=None, metavar="A-B,B-C",
                   help="skeleton edges between joint names (default: a CVAT skeleton label's edges, coco: the "
                   "file's edges between kept joints, else none)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def _run_convert(args: argparse.Namespace) -> int:
    from slimpose.data.convert import convert, summary

    check_file_out(args.out, "person_keypoints.json")
    data = convert(args.fmt, args.input, args.out, args.keypoints, args.skeleton, args.overwrite)
    print(summary(data, args.fmt, args.input, args.out))
    return 0
