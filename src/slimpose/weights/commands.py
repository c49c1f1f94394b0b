"""``slimpose weights``: list the shipped weights, or pack a training run into one.

    slimpose weights [--json FILE]
    slimpose weights pack RUN_DIR --name lpn_50_lsp_192x144 --command "slimpose train ..."

Packing rounds the run's best weights to fp16 (the checkpoint that ships), exports the
same weights to ONNX (float32 arithmetic on weights stored as float16, or with ``--int8``
quantised to INT8 after calibration on the run's training crops), evaluates the
checkpoint and the file itself (through the torch-free runtime) on the run's validation
set with the flip test, and writes the manifest: ``val_pck`` is the shipped file's
figure, ``checkpoint_val_pck`` the fp16 checkpoint's. Packing
under an existing name replaces its files, so a retrain never adds a second copy.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from slimpose.codecs import DECODE_METHODS
from slimpose.cli_support import (add_int8_arguments, calibration_crops, check_file_out, int8_options, plural,
                                  write_json)
from slimpose.errors import ConfigError
from slimpose.machine import cpu_name
from slimpose.weights import WEIGHTS_DIR, ShippedWeight, file_sha256, list_weights


def add_weights_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", default="list", choices=["list", "pack"],
                   help="list the shipped weights (default), or pack a training run into one")
    p.add_argument("run", nargs="?", help="pack: the training run's directory (its best.pth is packed)")
    p.add_argument("--json", metavar="FILE", help="list: also write the weights as a JSON list to FILE")
    p.add_argument("--markdown", action="store_true",
                   help="list: print a markdown table from the manifests (the one the docs carry)")
    p.add_argument("--name", help="pack: the weight's name, e.g. lpn_50_lsp_192x144")
    p.add_argument("--checkpoint", help="pack: the checkpoint to ship (default: RUN/best.pth)")
    p.add_argument("--command", default="", help="pack: the exact command that trained it (recorded)")
    p.add_argument("--decode", choices=DECODE_METHODS,
                   help="pack: the heatmap decoding the file and manifest carry and the figure is measured with "
                        "(default: the run's test.decode)")
    p.add_argument("--int8", action="store_true",
                   help="pack: ship the ONNX quantised to INT8 (calibrated on the run's training crops) and score "
                        "that file; the fp16 checkpoint stays the float weights")
    p.add_argument("--num-calib", type=int, default=128, help="pack --int8: calibration crops (default 128)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="pack: overrides of the run's config for the shipped figure, e.g. the test set in "
                        "data.val.ann_file=... (they are stored in the manifest's config, which eval --onnx NAME "
                        "uses)")
    p.add_argument("--joints", default=None, metavar="A,B,C",
                   help="pack, COCO-format validation: also the AP over these joints (e.g. the 12 body joints), "
                        "from the same predictions")
    add_int8_arguments(p)
    p.add_argument("--dir", default=None, help=argparse.SUPPRESS)


def run_weights(args: argparse.Namespace) -> int:
    if args.action == "pack":
        return _pack(args)
    if args.json:
        check_file_out(args.json, "weights.json", "--json")
    weights = list_weights(args.dir)
    if args.markdown:
        print(markdown_weights_table(weights))
    elif not weights:
        print("no shipped weights")
    for w in () if args.markdown else weights:
        m = w.manifest
        train = m.get("training", {})
        subset = m.get("val_metrics_joints") or {}
        also = f" ({len(subset['joints'])} joints {subset['AP']:.3f})" if subset else ""
        print(f"{w.name:<24} {w.model:<12} {w.input_size[0]}x{w.input_size[1]} {m.get('precision', 'float32'):<7}  "
              f"layout {w.layout:<5} {w.headline()}{also}  "
              f"({train.get('minutes', '?')} min, {train.get('crops', '?')} crops)  {w.path.name}")
        if "vs_movenet" in m:
            vs = m["vs_movenet"]
            print(f"{'':<24} beside MoveNet Lightning ({vs['movenet_pck12']:.1f}): PCK@0.2 12 joints {vs['pck12']:.1f} "
                  f"at {vs['latency_ratio']:.2f}x its latency, {vs['pck12_flip']:.1f} at {vs['latency_ratio_flip']:.2f}x "
                  f"with the flip test")
    if args.json:
        write_json(args.json, [w.summary() for w in weights])
        print(f"wrote {args.json}")
    return 0


def markdown_weights_table(weights: list[ShippedWeight]) -> str:
    """The shipped weights as markdown tables, every figure from their manifests: one for
    LSP weights (PCK per joint group), one for COCO-format ones (AP), each when there are any."""
    lsp = [w for w in weights if w.val_pck is not None]
    coco = [w for w in weights if w.val_ap is not None]
    names = {w.name for w in weights}
    tables = [_table(lsp, "val PCK@0.2", ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "PCK@0.1"),
                     lambda w: f"{w.val_pck:.1f}", "{:.1f}", names)] if lsp or not coco else []
    if coco:
        tables.append(_table(coco, "val AP", ("AP50", "AP75", "APM", "APL", "AR", "AP, named joints"),
                             lambda w: f"{w.val_ap:.3f}", "{:.3f}", names))
    measured = [w for w in weights if "vs_movenet" in w.manifest]
    if measured:
        tables.append(_movenet_table(measured))
    return "\n\n".join(tables)


def _movenet_table(weights: list[ShippedWeight]) -> str:
    """The weights beside MoveNet Lightning, as tools/compare_movenet.py recorded them."""
    blocks = [w.manifest["vs_movenet"] for w in weights]
    first = blocks[0]
    lines = ["| beside MoveNet | PCK@0.2 12 joints | latency / MoveNet | flip test: PCK | latency / MoveNet |",
             "|---|---|---|---|---|",
             f"| MoveNet Lightning int8 192x192 | {first['movenet_pck12']:.1f} | 1.00 | - | - |"]
    for w, vs in zip(weights, blocks):
        lines.append(f"| `{w.name}` | {vs['pck12']:.1f} | {vs['latency_ratio']:.2f} | {vs['pck12_flip']:.1f} | "
                     f"{vs['latency_ratio_flip']:.2f} |")
    # weights measured in different sittings name each sitting's command
    sittings = {vs["command"]: f"{plural(len(vs['latency_ratios']), 'run')} ({len(vs['latency_ratios_flip'])} with the "
                f"flip test) of `{vs['command']}`" for vs in blocks}
    lines.append(f"\n{first['split']} ({first['images']} people), {first['threads']} threads on {first['cpu']}; "
                 f"each latency ratio is the median of {'; of '.join(sittings.values())}, each weight beside "
                 "MoveNet alone.")
    return "\n".join(lines)


def _table(weights: list[ShippedWeight], headline: str, columns: tuple[str, ...], figure, fmt: str,
           shipped: set[str]) -> str:
    lines = [f"| name | model | input | precision | decode | {headline} | " + " | ".join(columns) + " | training |",
             "|---" * (7 + len(columns)) + "|"]
    for w in weights:
        m = w.manifest
        metrics = dict(m.get("val_metrics", {}))
        if m.get("val_metrics_joints"):
            subset = m["val_metrics_joints"]
            metrics["AP, named joints"] = subset["AP"]
        train = m.get("training", {})
        cells = [f"`{w.name}`", f"`{w.model}`", f"{w.input_size[0]}x{w.input_size[1]}", m.get("precision", "float32"),
                 w.decode, figure(w), *(fmt.format(metrics[c]) if c in metrics else "-" for c in columns),
                 _training_cell(train, shipped)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _training_cell(train: dict, shipped: set[str]) -> str:
    """``3,000 iterations, 31.2 min``, and the weights it started from when it did not start
    from scratch: a shipped weight's name, else the recorded path."""
    if not {"iterations", "minutes"} <= set(train):
        return "-"
    start = train.get("pretrained") or ""
    if Path(start).stem in shipped:
        start = Path(start).stem
    start = f", from `{start}`" if start else ""
    return f"{train['iterations']:,} iterations, {train['minutes']} min{start}"


def training_record(run_dir: Path) -> dict:
    """Totals over every sitting of a run, from its log.jsonl (resumes append to it)."""
    log = run_dir / "log.jsonl"
    if not log.is_file():
        raise ConfigError(f"{log}: the run has no training log")
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    seconds = sum(r.get("epoch_seconds", 0.0) for r in records)
    iters = sum(r.get("iterations", 0) for r in records)
    return {"epochs": len(records), "iterations": iters, "minutes": round(seconds / 60, 1),
            "hardware": f"{cpu_name()} (CPU)"}


def _pack(args: argparse.Namespace) -> int:
    import torch

    from slimpose.config import config_from_dict
    from slimpose.data.dataset import build_dataset
    from slimpose.deploy.evaluate import evaluate_onnx
    from slimpose.deploy.export import export_onnx
    from slimpose.engine.checkpoint import load_checkpoint, load_model_weights, save_checkpoint
    from slimpose.engine.distributed import init_distributed
    from slimpose.engine.evaluate import evaluate
    from slimpose.engine.builders import build_codec_for, build_model_for, checkpoint_meta
    from slimpose.io import write_json_atomic
    from slimpose.data.layouts import resolve_layout

    if not (args.run and args.name):
        raise ConfigError("pack needs RUN_DIR and --name")
    if not args.int8 and (args.per_tensor or args.calibrate != "minmax" or args.keep_float
                          or args.quantize_attention or args.full_range or args.reduce_range):
        raise ConfigError("--per-tensor, --calibrate, --keep-float, --quantize-attention, --full-range and "
                          "--reduce-range apply to pack --int8")
    run_dir = Path(args.run)
    ckpt_path = Path(args.checkpoint) if args.checkpoint else run_dir / "best.pth"
    ckpt = load_checkpoint(ckpt_path)
    cfg = config_from_dict(ckpt["config"], args.set, source=f"{ckpt_path} (stored config)")
    if args.decode:
        cfg.test.decode = args.decode
    model = build_model_for(cfg)
    load_model_weights(model, ckpt)
    # Ship what fp16 can hold, and export and score exactly those weights.
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in half.items()})

    if cfg.data.val.type not in ("lsp", "coco"):
        raise ConfigError(f"{ckpt_path}: shipped weights are validated with PCK on LSP data or AP on COCO-format "
                          f"data (this run's validation type: {cfg.data.val.type!r})")
    if args.joints and cfg.data.val.type != "coco":
        raise ConfigError("--joints: scores a subset of joints of COCO-format validation data")
    out_dir = Path(args.dir) if args.dir else WEIGHTS_DIR
    onnx_path, pth_path, manifest_path = (out_dir / f"{args.name}{ext}" for ext in (".onnx", ".pth", ".json"))
    layout = resolve_layout(cfg)
    size = tuple(cfg.data.input_size)
    with tempfile.TemporaryDirectory(prefix="slimpose-pack-") as tmp:
        float_path = Path(tmp) / "float.onnx" if args.int8 else onnx_path
        export_onnx(model, float_path, size, layout, decode=cfg.test.decode, beta=cfg.test.beta,
                    sigma=cfg.data.heatmap_sigma, model_name=cfg.model.name, model_kwargs=dict(cfg.model.kwargs),
                    fp16_weights=not args.int8)
        if args.int8:
            from slimpose.deploy.quantize import quantize_int8

            crops = calibration_crops(float_path, config=cfg, split="train", num=args.num_calib)
            quantization = quantize_int8(float_path, onnx_path, crops, **int8_options(args))
    meta = checkpoint_meta(cfg, model.output_kind)
    save_checkpoint({"model": half, "config": cfg.to_dict(), "meta": meta,
                     "epoch": ckpt.get("epoch"), "stage": ckpt.get("stage", 0)}, pth_path)

    codec = build_codec_for(cfg, model.output_kind)
    with tempfile.TemporaryDirectory(prefix="slimpose-pack-") as tmp:
        metrics = evaluate(model.eval(), build_dataset(cfg, "val", codec), codec, flip=cfg.test.flip,
                           batch_size=cfg.data.val_batch_size, workers=0, info=init_distributed(), out_dir=Path(tmp))
        checkpoint_figure = _figures(cfg, metrics, Path(tmp), args.joints)
        # The figure of the file that ships: INT8, or float32 arithmetic on weights whose
        # BN-folded form was rounded to float16 again.
        metrics = evaluate_onnx(onnx_path, cfg.data.val, layout, flip=cfg.test.flip, out_dir=Path(tmp) / "onnx")
        figures = _figures(cfg, metrics, Path(tmp) / "onnx", args.joints)
    headline = "val_pck" if cfg.data.val.type == "lsp" else "val_ap"
    manifest = {
        "name": args.name, "file": onnx_path.name, "checkpoint": pth_path.name, "model": cfg.model.name,
        "input_size": list(size), "layout": layout.name, "decode": cfg.test.decode,
        "precision": "int8" if args.int8 else "float32",
        **figures, f"checkpoint_{headline}": checkpoint_figure[headline],
        "val_set": _val_set(cfg),
        "config": cfg.to_dict(), "command": args.command,
        "training": {**training_record(run_dir), "crops": None, "from_scratch": not cfg.model.pretrained,
                     "pretrained": cfg.model.pretrained},
        **({"quantization": {k: v for k, v in quantization.items() if not k.startswith(("path", "size_"))}}
           if args.int8 else {}),
        "sha256": file_sha256(onnx_path), "checkpoint_sha256": file_sha256(pth_path),
        "torch": torch.__version__,
    }
    manifest["training"]["crops"] = manifest["training"]["iterations"] * cfg.data.batch_size
    write_json_atomic(manifest_path, manifest)
    shipped = ShippedWeight.from_manifest(manifest_path)
    print(f"packed {args.name}: {onnx_path.name} ({onnx_path.stat().st_size / 1e6:.1f} MB), "
          f"{pth_path.name} ({pth_path.stat().st_size / 1e6:.1f} MB); {shipped.headline().strip()}")
    return 0


def _figures(cfg, metrics: dict, predictions: Path, joints: str | None) -> dict:
    """The manifest's figures from an evaluation: LSP PCK in percent (``val_pck``), COCO AP
    as a fraction (``val_ap``), all metrics, and with ``joints`` the AP over those joints
    from the same predictions (``val_metrics_joints``)."""
    kept = {k: v for k, v in metrics.items() if k != "eval_seconds"}
    if cfg.data.val.type == "lsp":
        return {"val_pck": round(100 * metrics["PCK"], 2), "val_metrics": {k: round(100 * v, 2) for k, v in kept.items()}}
    figures = {"val_ap": round(metrics["AP"], 4), "val_metrics": {k: round(v, 4) for k, v in kept.items()}}
    if joints:
        from slimpose.metrics.coco import evaluate_results_file

        names = [j.strip() for j in joints.split(",") if j.strip()]
        subset = evaluate_results_file(cfg.data.val.ann_file, predictions / "results_keypoints.json", joints=names)
        figures["val_metrics_joints"] = {"joints": names, "AP": round(subset["AP"], 4)}
    return figures


def _val_set(cfg) -> str:
    val = cfg.data.val
    images = "all images" if val.first is None and val.last is None else f"images {val.first}-{val.last}"
    boxes = "detected boxes" if val.det_file else "ground-truth boxes"
    return f"{val.ann_file} {images}, {boxes}, {'flip test' if cfg.test.flip else 'no flip'}"
