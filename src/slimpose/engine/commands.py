"""``slimpose train`` and ``slimpose eval``."""

from __future__ import annotations

import argparse
from pathlib import Path

from slimpose.cli import write_json
from slimpose.errors import ConfigError


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="experiment YAML (see configs/)")
    p.add_argument("--work-dir", help="where checkpoints and logs go (default: work_dirs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from WORK_DIR/last.pth")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="override config fields, e.g. train.lr=5e-4")


def run_train(args: argparse.Namespace) -> int:
    from slimpose.config import load_config
    from slimpose.engine.train import train

    cfg = load_config(args.config, args.set)
    work_dir = Path(args.work_dir or Path("work_dirs") / Path(args.config).stem)
    summary = train(cfg, work_dir, resume=args.resume)
    if summary.get("best") is not None:
        print(f"best {summary['main_metric']} = {summary['best']:.4f} at epoch {summary['best_epoch']}; "
              f"checkpoints in {work_dir}")
    return 0


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="experiment YAML (default: the config stored in the checkpoint)")
    p.add_argument("--checkpoint", help="trained weights (.pth)")
    p.add_argument("--no-flip", action="store_true", help="turn the flip test off")
    p.add_argument("--boxes", help="COCO person-detection results JSON to use instead of ground-truth boxes")
    p.add_argument("--decode", choices=["argmax", "dark", "softargmax"], help="heatmap decoding")
    p.add_argument("--out", help="write the metrics here as JSON (predictions go beside it)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="override config fields")
    p.add_argument("--ann", help="COCO keypoint annotation JSON (with --results: score a results file, no model)")
    p.add_argument("--results", help="COCO keypoint results JSON to score against --ann")


def _print_metrics(metrics: dict) -> None:
    width = max(map(len, metrics)) if metrics else 0
    for k, v in metrics.items():
        print(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}")


def run_eval(args: argparse.Namespace) -> int:
    if args.ann or args.results:
        if not (args.ann and args.results):
            raise ConfigError("--ann and --results go together: score RESULTS against ANN")
        from slimpose.metrics.coco import evaluate_results_file

        metrics = evaluate_results_file(args.ann, args.results)
        _print_metrics(metrics)
        if args.out:
            write_json(args.out, metrics)
        return 0
    if not args.checkpoint:
        raise ConfigError("give --checkpoint (or --ann with --results to score a results file)")
    return _eval_checkpoint(args)


def _eval_checkpoint(args: argparse.Namespace) -> int:
    from slimpose.config import config_from_dict, load_config
    from slimpose.engine.checkpoint import load_checkpoint, load_model_weights
    from slimpose.engine.distributed import init_distributed, shutdown_distributed
    from slimpose.engine.evaluate import evaluate
    from slimpose.engine.train import build_codec_for, build_model_for
    from slimpose.data.dataset import build_dataset

    ckpt = load_checkpoint(args.checkpoint)
    overrides = list(args.set)
    if args.boxes:
        overrides.append(f"data.val.det_file={args.boxes}")
    if args.decode:
        overrides.append(f"test.decode={args.decode}")
    if args.config:
        cfg = load_config(args.config, overrides)
    elif isinstance(ckpt.get("config"), dict):
        cfg = config_from_dict(ckpt["config"], overrides, source=f"{args.checkpoint} (stored config)")
    else:
        raise ConfigError(f"{args.checkpoint}: holds no config; pass the experiment YAML")
    if not cfg.data.val.ann_file:
        raise ConfigError("data.val.ann_file: the config has no validation set to evaluate on")
    info = init_distributed()
    try:
        model = build_model_for(cfg).to(info.device)
        load_model_weights(model, ckpt)
        codec = build_codec_for(cfg, model.output_kind)
        dataset = build_dataset(cfg, "val", codec)
        out = Path(args.out) if args.out else Path(args.checkpoint).with_name("eval_metrics.json")
        metrics = evaluate(model, dataset, codec, flip=cfg.test.flip and not args.no_flip,
                           batch_size=cfg.data.val_batch_size, workers=cfg.data.workers, info=info,
                           out_dir=out.parent)
        if info.is_main:
            _print_metrics(metrics)
            write_json(out, metrics)
            print(f"metrics written to {out}; predictions in {out.parent}")
    finally:
        shutdown_distributed(info)
    return 0
