"""``slimpose quickstart``: the product on real photos, then the whole training loop on
the embedded default, in a few CPU minutes.

Draws the shipped ``lpn_50_lsp_192x144`` weight's poses on the photos bundled in
``slimpose/assets`` (torch-free, as ``slimpose infer`` does, in the photos' bundled
person boxes), then generates a synthetic COCO-format data set, trains TinyPose at
128x96 for a fixed, seeded number of iterations (so the AP repeats on a machine whatever
its load), evaluates it with the official COCO metric, and draws its predictions on
validation images.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

from slimpose.cli_support import check_folder_out, plural
from slimpose.errors import SlimposeError

ASSETS = Path(__file__).resolve().parents[1] / "assets"
PHOTO_BOXES = ASSETS / "boxes.json"
PHOTO_MODEL = "lpn_50_lsp_192x144"

QUICKSTART_CONFIG = {
    "model": {"name": "tinypose"},
    "data": {
        "layout": "coco",
        "input_size": [128, 96],
        "heatmap_sigma": 1.5,
        "batch_size": 32,
        "val_batch_size": 64,
        "workers": 1,
        "train": {"type": "coco"},
        "val": {"type": "coco"},
        "augment": {"rotation": 30.0, "scale_range": [0.75, 1.25], "half_body_prob": 0.2},
    },
    # A fixed schedule, not a time budget: the 600 synthetic training images hold ~1000
    # people, 31 iterations of batch 32 an epoch, so 16 epochs are ~500 iterations,
    # about 3 minutes on 2 idle CPU cores. Seeded data order and augmentation give the
    # same AP on every run on one machine; a loaded machine only takes longer.
    "train": {
        "epochs": 16,
        "optimizer": "adam",
        "lr": 2e-3,
        "schedule": "cosine",
        "warmup_iters": 30,
        "val_interval": 0,
        "seed": 0,
        "deterministic": True,
        "log_interval": 5,
    },
    "test": {"flip": True},
}


def add_quickstart_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="quickstart", help="output folder (default: ./quickstart)")
    p.add_argument("--num-train", type=int, default=600, help="synthetic training images")
    p.add_argument("--num-val", type=int, default=100, help="synthetic validation images")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs (default {QUICKSTART_CONFIG['train']['epochs']})")
    p.add_argument("--budget", type=float, default=None, metavar="MINUTES",
                   help="stop training after this many minutes (default: none; the training length is fixed, so "
                        "the AP repeats from run to run; a run stopped by the budget has a lower AP that does not)")
    p.add_argument("--overwrite", action="store_true", help="replace a previous quickstart run in --out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="override the embedded config")


def draw_photos(out: Path, overwrite: bool) -> int:
    """The shipped weight's poses on the bundled photos, drawn by ``slimpose infer`` into ``out``.

    It runs as its own process: a command module never imports another one."""
    argv = [sys.executable, "-m", "slimpose", "infer", PHOTO_MODEL, str(ASSETS),
            "--detector", f"boxes:{PHOTO_BOXES}", "--out", str(out)]
    return subprocess.run(argv + (["--overwrite"] if overwrite else [])).returncode


def draw_predictions(results_file: Path, ann_file: Path, img_dir: Path, out_png: Path, layout,
                     num_images: int = 8, min_score: float = 0.2) -> None:
    """A grid of validation images with every predicted skeleton drawn."""
    import cv2
    import numpy as np

    from slimpose.drawing import draw_pose, make_grid

    results = json.loads(results_file.read_text())
    images = json.loads(ann_file.read_text())["images"][:num_images]
    tiles = []
    for info in images:
        image = cv2.imread(str(img_dir / info["file_name"]))
        for r in results:
            if r["image_id"] == info["id"] and r["score"] >= min_score:
                kpts = np.asarray(r["keypoints"], dtype=np.float32).reshape(-1, 3)
                image = draw_pose(image, kpts[:, :2], kpts[:, 2], layout)
        tiles.append(image)
    cv2.imwrite(str(out_png), make_grid(tiles, cols=4))


def run_quickstart(args: argparse.Namespace) -> int:
    from slimpose.config import config_from_dict, save_config
    from slimpose.io import write_json_atomic
    from slimpose.data.synthetic import generate_synthetic_coco
    from slimpose.engine.rundir import claim_work_dir
    from slimpose.engine.train import Trainer
    from slimpose.data.layouts import resolve_layout

    if args.budget is not None and not (math.isfinite(args.budget) and args.budget > 0):
        raise SlimposeError(f"--budget must be a number of minutes above 0, got {args.budget:g}")
    start = time.perf_counter()
    out = check_folder_out(args.out, "quickstart")
    work_dir = out / "train"
    claim_work_dir(work_dir, args.overwrite, f"slimpose train --resume {work_dir}")
    photos = out / "photos"
    print(f"[1/5] drawing the shipped {PHOTO_MODEL} weight's poses on the photos in {ASSETS} (in their people's "
          f"COCO boxes from {PHOTO_BOXES.name}: the package ships no person detector) to {photos}")
    code = draw_photos(photos, args.overwrite)
    if code != 0:
        return code
    data_dir = out / "data"
    print(f"[2/5] generating {plural(args.num_train + args.num_val, 'synthetic image')} "
          f"({args.num_train} train, {args.num_val} val) in {data_dir}")
    paths = generate_synthetic_coco(data_dir, args.num_train, args.num_val, args.seed)
    overrides = [
        f"data.train.ann_file={paths['train_ann']}", f"data.train.img_dir={paths['train_images']}",
        f"data.val.ann_file={paths['val_ann']}", f"data.val.img_dir={paths['val_images']}",
        f"train.seed={args.seed}",
    ]
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    if args.budget is not None:
        overrides.append(f"train.max_minutes={args.budget}")
    cfg = config_from_dict(QUICKSTART_CONFIG, overrides + list(args.set), source="quickstart config")
    trainer = Trainer(cfg, work_dir)
    tc = cfg.train
    per_epoch = len(trainer.loader) if tc.max_iters_per_epoch <= 0 else min(len(trainer.loader),
                                                                            tc.max_iters_per_epoch)
    print(f"[3/5] training {cfg.model.name} at {cfg.data.input_size[0]}x{cfg.data.input_size[1]} for "
          f"{plural(tc.epochs, 'epoch')} ({plural(tc.epochs * per_epoch, 'iteration')} of batch "
          f"{cfg.data.batch_size}, seed {tc.seed}; checkpoints and log in {work_dir})")
    summary = trainer.fit()
    print("[4/5] the final model was evaluated on the synthetic validation set (COCO OKS AP, flip test)")
    metrics = dict(summary["metrics"])
    metrics["stopped_by_budget"] = summary["stopped_by_time_budget"]
    metrics["minutes"] = round((time.perf_counter() - start) / 60, 2)
    write_json_atomic(out / "metrics.json", metrics)
    save_config(cfg, out / "config.yaml")
    picture = out / "predictions.png"
    print(f"[5/5] drawing predictions on validation images to {picture}")
    draw_predictions(work_dir / "val_predictions" / "results_keypoints.json", Path(paths["val_ann"]),
                     Path(paths["val_images"]), picture,
                     resolve_layout(cfg))
    print(f"photos drawn by {PHOTO_MODEL}: {photos}")
    print(f"metrics: {out / 'metrics.json'}; predictions: {picture}")
    if summary["stopped_by_time_budget"]:
        print(f"--budget {args.budget:g} min stopped training in epoch {trainer.state.epoch} of {tc.epochs}: this AP "
              f"is not the repeatable figure (run without --budget for that)")
    print(f"AP {metrics['AP']:.3f}  AP50 {metrics['AP50']:.3f}  AR {metrics['AR']:.3f}  ({metrics['minutes']:.1f} min)")
    return 0
