"""``slimpose data synthetic`` and ``slimpose data show``."""

from __future__ import annotations

import argparse
import time


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    from slimpose.config import add_data_root_argument

    sub = parser.add_subparsers(dest="data_command", metavar="{synthetic,show}")
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


def run_data(args: argparse.Namespace) -> int:
    if args.data_command == "synthetic":
        from slimpose.data.synthetic import generate_synthetic_coco

        if args.num_train < 0 or args.num_val < 0:
            raise SystemExit("slimpose data synthetic: --num-train and --num-val must be >= 0")
        start = time.perf_counter()
        paths = generate_synthetic_coco(args.out, args.num_train, args.num_val, args.seed, tuple(args.size))
        print(f"wrote {args.num_train} train + {args.num_val} val images in {time.perf_counter() - start:.1f} s")
        for key in ("train_ann", "train_images", "val_ann", "val_images"):
            print(f"  {key}: {paths[key]}")
        return 0
    if args.data_command == "show":
        from slimpose.config import load_config
        from slimpose.data.show import show

        cfg = load_config(args.config, args.set, args.data_root)
        out = args.out or f"data_show_{args.split}.png"
        path = show(cfg, args.split, args.num, out, args.seed)
        print(f"wrote {path}")
        return 0
    raise SystemExit(f"slimpose data: unknown sub-command {args.data_command!r}")
