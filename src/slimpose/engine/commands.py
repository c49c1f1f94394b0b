"""``slimpose train``, ``slimpose eval`` and ``slimpose audit``."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from slimpose.cli_support import check_file_out, write_json
from slimpose.codecs import DECODE_METHODS
from slimpose.engine.rundir import resume_command
from slimpose.errors import ConfigError, OutputError
from slimpose.signals import Terminated, terminate_as_interrupt


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    from slimpose.config import add_data_root_argument

    p.add_argument("config", nargs="?", help="experiment YAML (see configs/); not needed with --resume WORK_DIR")
    p.add_argument("--work-dir", help="where checkpoints and logs go (default: work_dirs/<config name>)")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="WORK_DIR",
                   help="continue the run in WORK_DIR (or --work-dir) from its last.pth with its saved config")
    p.add_argument("--override-saved-config", action="store_true",
                   help="with --resume: apply a CONFIG or --set that differs from the saved run "
                        "(the previous config.yaml is kept beside the new one)")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in a work dir that already holds one (its checkpoints and logs are removed)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="override config fields, e.g. train.lr=5e-4")
    add_data_root_argument(p)


def _is_main_process() -> bool:
    # Under torchrun every process runs the command; only rank 0 touches the run folder.
    return os.environ.get("RANK", "0") == "0"


def _train_work_dir(args: argparse.Namespace) -> Path:
    if isinstance(args.resume, str):
        if Path(args.resume).suffix in (".yaml", ".yml"):
            raise ConfigError(f"--resume {args.resume}: give the run's folder, not a config "
                              f"(slimpose train CONFIG --work-dir W --resume, or slimpose train --resume W)")
        if args.work_dir and Path(args.work_dir) != Path(args.resume):
            raise ConfigError(f"--resume {args.resume} and --work-dir {args.work_dir} name different folders")
        return Path(args.resume)
    if args.work_dir:
        return Path(args.work_dir)
    if not args.config:
        raise ConfigError("give an experiment CONFIG, or --resume WORK_DIR to continue a run")
    return Path("work_dirs") / Path(args.config).stem


def _saved_config(work_dir: Path, checkpoint: dict | None, check_mirror: bool = True):
    """The run's config: the one stored in its last.pth, which config.yaml mirrors (unless
    ``check_mirror`` is off, a config.yaml that is damaged or differs is refused: the user
    decides which is meant); config.yaml alone before the first epoch was saved; None
    without either."""
    from slimpose.config import config_from_dict, load_saved_config
    from slimpose.engine.rundir import config_differences, describe_differences

    path = work_dir / "config.yaml"
    if checkpoint is None:
        return load_saved_config(path) if path.is_file() else None
    if not isinstance(checkpoint.get("config"), dict):
        raise ConfigError(f"{work_dir / 'last.pth'}: holds no config; it was not written by slimpose train")
    stored = config_from_dict(checkpoint["config"], source=f"{work_dir / 'last.pth'} (stored config)")
    if check_mirror and path.exists():
        keep = (f"apply it with `slimpose train {shlex.quote(str(path))} --resume {shlex.quote(str(work_dir))} "
                f"--override-saved-config`, or delete it to resume with the config stored in last.pth")
        try:
            written = load_saved_config(path)
        except ConfigError as e:
            raise ConfigError(f"{e}; {keep}") from None
        diffs = config_differences(stored.to_dict(), written.to_dict())
        if diffs:
            raise ConfigError(f"{path}: differs from the config stored in {work_dir / 'last.pth'} "
                              f"({describe_differences(diffs)}); {keep}")
    return stored


def _resume_config(args: argparse.Namespace, work_dir: Path, checkpoint: dict | None):
    """The config a resumed run continues with, and whether it replaces the saved one:
    the saved one, unless a differing CONFIG or --set is given with --override-saved-config."""
    from slimpose.config import config_from_dict, load_config
    from slimpose.engine.rundir import config_differences, describe_differences

    # With --override-saved-config the given config replaces config.yaml, whatever it holds.
    saved = _saved_config(work_dir, checkpoint, check_mirror=not args.override_saved_config)
    if saved is None:
        if not args.config:
            raise ConfigError(f"{work_dir}: no run to resume (no config.yaml or last.pth there)")
        print(f"slimpose: nothing to resume in {work_dir}; starting a new run")
        return load_config(args.config, args.set, args.data_root), False
    if args.config:
        given = load_config(args.config, args.set, args.data_root)
    elif args.set:
        given = config_from_dict(saved.to_dict(), args.set, source="--set", data_root=args.data_root)
    else:
        return saved, False
    diffs = config_differences(saved.to_dict(), given.to_dict())
    if not diffs:
        return saved, False
    if not args.override_saved_config:
        raise ConfigError(f"{work_dir}: the given config differs from the saved run: {describe_differences(diffs)}. "
                          f"Resume as saved with `{resume_command(work_dir)}`, or add --override-saved-config "
                          f"to apply the change")
    print(f"slimpose: --override-saved-config: the resumed run changes {describe_differences(diffs)}")
    return given, True


def _finished(cfg, checkpoint: dict | None) -> bool:
    if checkpoint is None:
        return False
    return checkpoint["stage"] >= cfg.train.stages - 1 and checkpoint["epoch"] >= cfg.train.epochs


def run_train(args: argparse.Namespace) -> int:
    from slimpose.config import load_config
    from slimpose.engine.checkpoint import load_checkpoint
    from slimpose.engine.rundir import locked_work_dir, restore_run_files
    from slimpose.engine.train import train

    work_dir = _train_work_dir(args)
    resuming = args.resume is not False
    replace_config = False
    if resuming:
        last = work_dir / "last.pth"
        checkpoint = load_checkpoint(last) if last.is_file() else None
        cfg, replace_config = _resume_config(args, work_dir, checkpoint)
        if _finished(cfg, checkpoint):
            if _is_main_process():
                with locked_work_dir(work_dir):
                    restore_run_files(work_dir, checkpoint)
            print(f"{work_dir}: the run is finished (epoch {checkpoint['epoch']}/{cfg.train.epochs}); nothing to do. "
                  f"To train longer, resume with --set train.epochs=N --override-saved-config")
            return 0
    else:
        if not args.config:
            raise ConfigError("give an experiment CONFIG, or --resume WORK_DIR to continue a run")
        cfg = load_config(args.config, args.set, args.data_root)
    try:
        with terminate_as_interrupt():
            summary = train(cfg, work_dir, resume=resuming, overwrite=args.overwrite,
                            keep_previous_config=replace_config)
    except KeyboardInterrupt as e:
        last = work_dir / "last.pth"
        kept = f"the last finished epoch is in {last}" if last.is_file() else "no epoch had finished"
        how, status = ("stopped by SIGTERM", e.exit_status) if isinstance(e, Terminated) else ("interrupted", 130)
        print(f"\nslimpose train: {how}; {kept}. Continue with:\n  {resume_command(work_dir)}", file=sys.stderr)
        return status
    except OSError as e:
        raise OutputError(f"{e.filename or work_dir}: cannot be written ({e.strerror or e}); continue the run "
                          f"once that is fixed with: {resume_command(work_dir)}") from None
    if summary.get("best") is not None:
        print(f"best {summary['main_metric']} = {summary['best']:.4f} at epoch {summary['best_epoch']}; "
              f"checkpoints in {work_dir}")
    return 0


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    from slimpose.config import add_data_root_argument

    p.add_argument("config", nargs="?", help="experiment YAML (default: the config stored in the checkpoint)")
    p.add_argument("--checkpoint", help="trained weights (.pth), or a shipped weight name (see 'slimpose weights')")
    p.add_argument("--onnx", help="score an exported ONNX file (float or INT8) or a shipped weight's ONNX through the "
                                  "torch-free runtime, on CONFIG's validation set (a shipped weight's own config "
                                  "without CONFIG)")
    p.add_argument("--no-flip", action="store_true", help="turn the flip test off")
    p.add_argument("--boxes", help="COCO person-detection results JSON to use instead of ground-truth boxes")
    p.add_argument("--decode", choices=DECODE_METHODS, help="heatmap decoding (default: the config's test.decode)")
    p.add_argument("--out", help="write the metrics here as JSON, predictions beside it "
                                 "(default: ./eval_<run>_<checkpoint>/metrics.json)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="override config fields")
    add_data_root_argument(p)
    p.add_argument("--ann", help="COCO keypoint annotation JSON (with --results: score a results file, no model)")
    p.add_argument("--results", help="COCO keypoint results JSON to score against --ann")
    p.add_argument("--layout", help="with --results: the results' keypoint layout when it is not the annotations' "
                                    "(e.g. lsp): OKS AP over the joints both share by name")
    p.add_argument("--joints", metavar="NAME,NAME,...",
                   help="with --results: score only these joints (annotation names): OKS AP and PCK over them")


def default_eval_dir(checkpoint: str | Path) -> Path:
    """./eval_<run folder>_<checkpoint stem>: in the current directory, so evaluating
    never writes into a training run's folder."""
    path = Path(checkpoint).resolve()
    return Path(f"eval_{path.parent.name}_{path.stem}")


def _print_metrics(metrics: dict) -> None:
    """One line per metric; PCK-family figures as percentages (``PCK  65.4%``), the
    others (COCO AP, AR) as fractions with four decimals, as the JSON keeps them all."""
    from slimpose.metrics import format_metric, is_pck_metrics

    percent = is_pck_metrics(metrics)
    width = max(map(len, metrics)) if metrics else 0
    for k, v in metrics.items():
        print(f"{k:<{width}}  {format_metric(k, v, percent)}")


def run_eval(args: argparse.Namespace) -> int:
    if args.ann or args.results:
        if not (args.ann and args.results):
            raise ConfigError("--ann and --results go together: score RESULTS against ANN")
        from slimpose.metrics.coco import evaluate_results_file

        if args.layout:
            from slimpose.keypoints import list_layouts

            if args.layout not in list_layouts():
                raise ConfigError(f"--layout {args.layout}: unknown; known layouts: {', '.join(list_layouts())}")
        if args.out:
            check_file_out(args.out, "metrics.json")
        joints = [j.strip() for j in args.joints.split(",") if j.strip()] if args.joints else None
        metrics = evaluate_results_file(args.ann, args.results, layout=args.layout, joints=joints)
        _print_metrics(metrics)
        if args.out:
            write_json(args.out, metrics)
        return 0
    if args.joints:
        raise ConfigError("--joints goes with --ann and --results (score a results file on some joints)")
    if args.out:  # the metrics JSON; the predictions go beside it
        check_file_out(args.out, "metrics.json")
    if args.onnx:
        if args.checkpoint:
            raise ConfigError("give --checkpoint or --onnx, not both")
        return _eval_onnx(args)
    if not args.checkpoint:
        raise ConfigError("give --checkpoint or --onnx (or --ann with --results to score a results file)")
    return _eval_checkpoint(args)


def _onnx_config(args: argparse.Namespace, option: str):
    """The ONNX file ``args.<option>`` names and the config whose data it runs on: CONFIG,
    or a shipped weight's own (its manifest's), with ``--set`` and ``--data-root``, the
    layout pinned to the file's where the config reads it from the data."""
    from slimpose.config import config_from_dict, load_config
    from slimpose.data.layouts import FROM_DATA, pin_layout
    from slimpose.deploy.runtime import read_onnx_metadata
    from slimpose.weights import get_weight, resolve_model_file

    name = getattr(args, option)
    onnx_path = resolve_model_file(name)
    # The model is the ONNX file: only the config's data and test sections are used, so its
    # model section is not checked against the model registry (which would import torch).
    if args.config:
        cfg = load_config(args.config, list(args.set), args.data_root, check_model=False)
    elif onnx_path.resolve() != Path(name).resolve():  # a shipped name: its manifest holds the config
        cfg = config_from_dict(get_weight(name).manifest["config"], list(args.set),
                               source=f"shipped weight {name} (manifest config)", data_root=args.data_root,
                               check_model=False)
    else:
        raise ConfigError(f"{onnx_path}: give the experiment CONFIG whose data to run it on")
    if cfg.data.layout == FROM_DATA:  # the layout the file carries: no training annotations needed
        pin_layout(cfg, read_onnx_metadata(onnx_path).layout)
    return onnx_path, cfg


def _eval_onnx(args: argparse.Namespace) -> int:
    from slimpose.data.layouts import resolve_layout
    from slimpose.deploy.evaluate import evaluate_onnx

    if args.boxes or args.decode:
        raise ConfigError("--boxes and --decode apply to --checkpoint; an ONNX file carries its own decoding")
    onnx_path, cfg = _onnx_config(args, "onnx")
    out = Path(args.out) if args.out else Path(f"eval_{onnx_path.stem}") / "metrics.json"
    metrics = evaluate_onnx(onnx_path, cfg.data.val, resolve_layout(cfg), flip=not args.no_flip, out_dir=out.parent)
    _print_metrics(metrics)
    write_json(out, metrics)
    print(f"wrote {out}")
    return 0


def _eval_checkpoint(args: argparse.Namespace) -> int:
    from slimpose.config import config_from_dict, load_config
    from slimpose.engine.checkpoint import load_checkpoint, load_model_weights
    from slimpose.engine.distributed import init_distributed, shutdown_distributed
    from slimpose.engine.evaluate import evaluate
    from slimpose.engine.builders import build_codec_for, build_model_for
    from slimpose.data.dataset import build_dataset
    from slimpose.data.layouts import pin_layout
    from slimpose.weights import resolve_checkpoint

    args.checkpoint = str(resolve_checkpoint(args.checkpoint))
    ckpt = load_checkpoint(args.checkpoint)
    overrides = list(args.set)
    if args.boxes:
        overrides.append(f"data.val.det_file={args.boxes}")
    if args.decode:
        overrides.append(f"test.decode={args.decode}")
    if args.config:
        cfg = load_config(args.config, overrides, args.data_root)
    elif isinstance(ckpt.get("config"), dict):
        cfg = config_from_dict(ckpt["config"], overrides, source=f"{args.checkpoint} (stored config)",
                               data_root=args.data_root)
    else:
        raise ConfigError(f"{args.checkpoint}: holds no config; pass the experiment YAML")
    if not cfg.data.val.ann_file:
        raise ConfigError("data.val.ann_file: the config has no validation set to evaluate on")
    meta = ckpt.get("meta")
    pin_layout(cfg, meta.get("layout") if isinstance(meta, dict) else None)  # from_data: the trained layout
    info = init_distributed()
    try:
        model = build_model_for(cfg).to(info.device)
        load_model_weights(model, ckpt)
        codec = build_codec_for(cfg, model.output_kind)
        dataset = build_dataset(cfg, "val", codec)
        out = Path(args.out) if args.out else default_eval_dir(args.checkpoint) / "metrics.json"
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


def add_audit_arguments(p: argparse.ArgumentParser) -> None:
    from slimpose.config import add_data_root_argument

    p.add_argument("config", nargs="?", help="experiment YAML whose data to audit (default: a shipped weight's own)")
    p.add_argument("--model", required=True,
                   help="the judge: an exported ONNX file or a shipped weight name, trained on the data's joints")
    p.add_argument("--split", choices=("train", "val"), default="train", help="which of the config's data sets")
    p.add_argument("--no-flip", action="store_true", help="turn the flip test off")
    p.add_argument("--margin", type=int, default=2,
                   help="a limb is listed when this many more of its joints hit mirrored than as labelled (default 2)")
    p.add_argument("--min-hits", type=int, default=3,
                   help="... and at least this many hit mirrored (default 3; a hit: within PCK@0.2)")
    p.add_argument("--out", help="the report (JSON; default: ./audit_<model>_<split>.json)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="override config fields")
    add_data_root_argument(p)
    p.epilog = ("Lists the people whose left and right labels look exchanged, limb by limb (legs, arms): a "
                "trained model predicts each person from its box, and a limb whose labels its prediction matches "
                "far better mirrored than as labelled is listed, with its image. The labels are only read; check "
                "the listed people in your labelling tool.")


def run_audit(args: argparse.Namespace) -> int:
    from slimpose.data.layouts import resolve_layout
    from slimpose.deploy.audit import audit_sides

    if args.margin < 1 or args.min_hits < 1:
        raise ConfigError(f"--margin {args.margin} --min-hits {args.min_hits}: both must be at least 1")
    if args.out:
        check_file_out(args.out, "audit.json")
    onnx_path, cfg = _onnx_config(args, "model")
    dataset = cfg.data.train if args.split == "train" else cfg.data.val
    if not dataset.ann_file:
        raise ConfigError(f"data.{args.split}.ann_file: the config has no {args.split} set to audit")
    report = audit_sides(onnx_path, dataset, resolve_layout(cfg), flip=not args.no_flip, margin=args.margin,
                         min_hits=args.min_hits)
    out = Path(args.out) if args.out else Path(f"audit_{onnx_path.stem}_{args.split}.json")
    write_json(out, report)
    looks = ", ".join(f"{name} {n}" for name, n in report["mirrored"].items())
    print(f"{report['people']} people read, {report['checked']} checked; mirrored-looking limbs: {looks}")
    for entry in report["flagged"][:10]:
        print(f"  {entry['image']}  {entry['limb']}: {entry['hits_mirrored']} joints hit mirrored, "
              f"{entry['hits_as_labelled']} as labelled")
    if len(report["flagged"]) > 10:
        print(f"  ... {len(report['flagged']) - 10} more")
    print(f"wrote {out}")
    return 0
