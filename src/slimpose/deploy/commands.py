"""CLI of the deployment side: models, complexity, export, bench, quantize.

This module imports no torch at import time; the commands that build models import it
when run. Helpers shared with other commands live in :mod:`slimpose.cli_support`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from slimpose.cli_support import (add_int8_arguments, calibration_crops, check_file_out, int8_options, parse_hxw,
                                  plural, spread, write_json)
from slimpose.codecs import DECODE_METHODS
from slimpose.deploy.export import DEFAULT_TOLERANCE
from slimpose.errors import SlimposeError


def _resolve_models(names: list[str], all_: bool, sized: bool = False) -> list[str]:
    """Registered names; with ``sized``, each may carry an input size (``lpn_50@128x96``)."""
    from slimpose.models.registry import list_models

    known = list_models()
    if all_ or not names:
        return known
    if sized:  # bench also takes ONNX files and shipped weight names
        from slimpose.deploy.benchmark import onnx_model_file

        names_ = [n for n in names if onnx_model_file(n) is None]
    else:
        names_ = list(names)
    unknown = [n for n in names_ if (n.partition("@")[0] if sized else n) not in known]
    if unknown:
        raise SlimposeError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return list(names)


def check_onnx_out(out: str | Path, inputs: list[str | Path]) -> None:
    """Refuse, in one line, an ONNX ``--out`` that cannot be written as a file or whose
    writing would lose a file (see :func:`slimpose.deploy.export.check_onnx_output`, which
    export_onnx and quantize_int8 run too): checked here before any model is loaded."""
    from slimpose.deploy.export import check_onnx_output

    check_onnx_output(out, inputs, name="--out")


# --------------------------------------------------------------------------- models


def add_models_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", metavar="PATH", help="also write the list as JSON")


def run_models(args: argparse.Namespace) -> int:
    if args.json:
        check_file_out(args.json, "models.json", "--json")
    from slimpose.models.registry import get_model_entry, list_models
    from slimpose.weights import list_weights

    shipped: dict[str, list[str]] = {}
    for w in list_weights():
        shipped.setdefault(w.model, []).append(w.name)
    names = list_models()
    width = max([len("model"), *map(len, names)])
    wwidth = max([len("shipped weights"), *(len(", ".join(v)) for v in shipped.values())])
    out = []
    print(f"{'model':<{width}} {'output':<10} {'shipped weights':<{wwidth}} "
          f"paper figures (params M / GMACs 1e9 @ input, K, form)")
    for name in names:
        e = get_model_entry(name)
        figs = [{"params_m": p.params_m, "gmacs": p.gmacs, "input": f"{p.input_size[0]}x{p.input_size[1]}",
                 "num_joints": p.num_joints, "form": p.form} for p in e.paper]
        text = "; ".join(f"{f['params_m']}M / {f['gmacs'] if f['gmacs'] is not None else '-'} @ {f['input']}, "
                         f"K={f['num_joints']}, {f['form']}" for f in figs) or "-"
        weights = ", ".join(shipped.get(name, [])) or "-"
        print(f"{name:<{width}} {e.output_kind:<10} {weights:<{wwidth}} {text}")
        if e.description:
            print(f"{'':<{width}} {'':<10} {'':<{wwidth}} {e.description}")
        out.append({"model": name, "output_kind": e.output_kind, "description": e.description,
                    "tolerance": e.tolerance, "paper": figs, "shipped_weights": shipped.get(name, [])})
    if shipped:
        print(f"\nshipped weights (trained, usable by name; 'slimpose weights' lists them): "
              f"{', '.join(n for v in shipped.values() for n in v)}")
    if args.json:
        write_json(args.json, out)
    return 0


# --------------------------------------------------------------------------- complexity


def add_complexity_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="*", metavar="MODEL", help="registered model names (default: all)")
    p.add_argument("--all", action="store_true", help="every registered model")
    p.add_argument("--input", type=parse_hxw, metavar="HxW",
                   help="one row per model at this input size (default: each paper setting)")
    p.add_argument("--json", metavar="PATH", help="write the rows as a JSON list")
    p.add_argument("--strict", action="store_true", help="exit 1 if a model is outside its paper tolerance")
    p.add_argument("--markdown", action="store_true", help="print a markdown table (the one the docs carry)")


def run_complexity(args: argparse.Namespace) -> int:
    if args.json:
        check_file_out(args.json, "complexity.json", "--json")
    from slimpose.deploy.complexity import complexity_table, format_complexity_table, markdown_complexity_table

    rows = complexity_table(_resolve_models(args.models, args.all), args.input)
    print(markdown_complexity_table(rows) if args.markdown else format_complexity_table(rows))
    if args.json:
        write_json(args.json, rows)
    bad = [f"{r['model']}@{r['input']}" for r in rows if r["within_tolerance"] is False]
    if bad:
        print(f"outside paper tolerance: {', '.join(bad)}", file=sys.stderr)
        return 1 if args.strict else 0
    return 0


# --------------------------------------------------------------------------- export


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="registered model name")
    p.add_argument("--checkpoint", metavar="PATH", help="trained weights (slimpose checkpoint or state dict), or a "
                                                        "shipped weight name (see 'slimpose weights')")
    p.add_argument("--input", type=parse_hxw, metavar="HxW",
                   help="input size (default: the checkpoint's, else the paper's, else 256x192)")
    p.add_argument("--out", required=True, metavar="FILE.onnx")
    p.add_argument("--dynamic-batch", action="store_true", help="batch dimension left dynamic")
    p.add_argument("--num-joints", type=int, metavar="K", help="keypoints (default: the layout's)")
    p.add_argument("--layout", metavar="NAME", help="keypoint layout: coco, mpii, lsp (default: the checkpoint's, else coco)")
    p.add_argument("--check-images", metavar="DIR", help="also compare on crops of up to 8 images (whole image as box)")
    p.add_argument("--decode", choices=DECODE_METHODS,
                   help="default heatmap decoding stored in the file (default: the checkpoint's, else the model's)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, metavar="TOL",
                   help="fail (and write nothing) when max |ONNX Runtime - PyTorch| exceeds TOL x max(1, max |output|) "
                        f"(default {DEFAULT_TOLERANCE:g}: float32 kernel differences of deep random-weight nets stay "
                        "below 3e-4, a wrong BN fold is ~1e-1)")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch check")
    p.add_argument("--fp16-weights", action="store_true",
                   help="round the weights to float16 and store them so (half the file); the arithmetic stays "
                        "float32 and the check compares against the rounded weights")


def _load_weights(model, path: str) -> dict:
    """Strict loading through the engine's loader; returns the checkpoint dict."""
    from slimpose.engine.checkpoint import load_model_weights

    return load_model_weights(model, path)


def _checkpoint_meta(path: str) -> dict:
    from slimpose.engine.checkpoint import load_checkpoint

    meta = load_checkpoint(path).get("meta") or {}
    return meta if isinstance(meta, dict) else {}


def _layout_for(name: str | None, k: int | None, meta_layout: dict | None):
    from slimpose.deploy.export import default_layout
    from slimpose.keypoints import KeypointLayout, get_layout

    if name:
        try:
            layout = get_layout(name)
        except KeyError as e:
            raise SlimposeError(str(e.args[0])) from None
    elif meta_layout:
        layout = KeypointLayout.from_dict(meta_layout)
    else:
        layout = default_layout(17 if k is None else k)
    if k is not None and k != layout.num_keypoints:
        raise SlimposeError(f"--num-joints {k} does not match layout {layout.name!r} ({layout.num_keypoints} keypoints)")
    return layout


def run_export(args: argparse.Namespace) -> int:
    from slimpose.deploy.benchmark import paper_input_size
    from slimpose.deploy.export import export_onnx, weights_record
    from slimpose.deploy.runtime import crops_from_images, list_images
    from slimpose.models.registry import build_model, list_models
    from slimpose.weights import resolve_checkpoint

    if args.model not in list_models():
        raise SlimposeError(f"unknown model {args.model!r}; known: {', '.join(list_models())}")
    if not args.tolerance >= 0:
        raise SlimposeError(f"--tolerance must be a number >= 0, got {args.tolerance}")
    if args.checkpoint:
        args.checkpoint = str(resolve_checkpoint(args.checkpoint))
    check_onnx_out(args.out, [args.checkpoint] if args.checkpoint else [])
    meta = _checkpoint_meta(args.checkpoint) if args.checkpoint else {}
    if meta.get("model_name") and meta["model_name"] != args.model:
        raise SlimposeError(f"{args.checkpoint}: checkpoint is for model {meta['model_name']!r}, not {args.model!r}")
    layout = _layout_for(args.layout, args.num_joints, meta.get("layout"))
    size = tuple(args.input) if args.input else (tuple(meta["input_size"]) if meta.get("input_size")
                                                 else paper_input_size(args.model))
    model = build_model(args.model, num_joints=layout.num_keypoints, input_size=size, **(meta.get("model_kwargs") or {}))
    if args.checkpoint:
        _load_weights(model, args.checkpoint)
    real = None
    if args.check_images and not args.no_check:
        info = model.model_info
        real = crops_from_images(list_images(args.check_images)[:8], size, info.mean, info.std,
                                 to_rgb=info.color_order == "RGB")
    res = export_onnx(model, args.out, size, layout, dynamic_batch=args.dynamic_batch, opset=args.opset,
                      check=not args.no_check, real_crops=real, decode=args.decode or meta.get("decode"),
                      beta=float(meta.get("beta", 160.0)),
                      sigma=float(meta.get("heatmap_sigma", 2.0)), model_name=args.model,
                      weights=weights_record(args.checkpoint) if args.checkpoint else None,
                      inputs=[args.checkpoint] if args.checkpoint else [],
                      model_kwargs=meta.get("model_kwargs") or {}, tolerance=args.tolerance,
                      fp16_weights=args.fp16_weights)
    print(f"wrote {res['path']} ({args.model}, input {size[0]}x{size[1]}, layout {layout.name}, "
          f"output {res['output_shape']}{', dynamic batch' if args.dynamic_batch else ''})")
    if not args.no_check:
        print(f"max abs diff ONNX Runtime vs PyTorch (deployed): random inputs {res['max_abs_diff_random']:.3g} "
              f"(outputs up to {res['max_abs_output_random']:.3g}; tolerance {res['tolerance']:g} x max(1, output))")
        if res["max_abs_diff_real"] is not None:
            print(f"max abs diff on {plural(len(real), 'real crop')}: {res['max_abs_diff_real']:.3g} "
                  f"(outputs up to {res['max_abs_output_real']:.3g})")
    return 0


# --------------------------------------------------------------------------- bench


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="registered model names, each optionally with its own input size (lpn_50@128x96), ONNX files "
                        "(e.g. an INT8 one) or shipped weight names; files run on ONNX Runtime only")
    p.add_argument("--all", action="store_true", help="every registered model")
    p.add_argument("--backend", default="torch,onnxruntime",
                   help="comma-separated: torch, onnxruntime, torch-cuda, onnxruntime-cuda (default: torch,onnxruntime)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--input", type=parse_hxw, metavar="HxW", help="input size (default: each model's paper size)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--no-spin", action="store_true",
                   help="idle threads sleep instead of spin-waiting (OMP_WAIT_POLICY=PASSIVE for torch, "
                        "allow_spinning=0 for ONNX Runtime): for machines shared with other processes")
    p.add_argument("--profile", action="store_true",
                   help="also profile each ONNX Runtime CPU run per op type (where the time goes)")
    p.add_argument("--json", metavar="PATH", help="write the rows as a JSON list")


def run_bench(args: argparse.Namespace) -> int:
    import os

    if args.json:
        check_file_out(args.json, "bench.json", "--json")

    if args.no_spin:
        if "torch" in sys.modules and os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
            print("slimpose bench: torch is already imported; OMP_WAIT_POLICY=PASSIVE cannot take effect",
                  file=sys.stderr)
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read by OpenMP when torch loads
    from slimpose.deploy.benchmark import benchmark, format_bench_table, format_profile_table

    models = _resolve_models(args.models, args.all, sized=True)
    if hasattr(os, "getloadavg"):
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
        if load > 0.75:
            print(f"note: 1-minute load average is {load:.2f} on {cores} cores: other processes compete for the "
                  f"CPU, so latencies are inflated{'' if args.no_spin else ' (try --no-spin)'}", file=sys.stderr)

    def progress(row):
        print(f"  {row['model']} {row['backend']}: {row['median_ms']:.2f} ms", file=sys.stderr, flush=True)

    rows = benchmark(models, backends=args.backend, threads=args.threads, batch=args.batch, input_size=args.input,
                     warmup=args.warmup, iters=args.iters, device=args.device, progress=progress,
                     spin=not args.no_spin, profile=args.profile)
    print(format_bench_table(rows))
    for row in rows:
        if "profile" in row:
            print(f"\n{row['model']} {row['input']} onnxruntime, {row['threads']} threads: kernel time per op type")
            print(format_profile_table(row["profile"]))
    if args.json:
        write_json(args.json, rows)
    return 0


# --------------------------------------------------------------------------- quantize


def add_quantize_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("onnx", metavar="FILE.onnx", help="a float model from 'slimpose export'")
    p.add_argument("--out", required=True, metavar="FILE_int8.onnx")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--calib-images", metavar="DIR", help="folder of images; the whole image is the box")
    src.add_argument("--calib-config", metavar="CONFIG", help="experiment config: crops of its validation persons")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="config override (with --calib-config)")
    p.add_argument("--data-root", metavar="DIR", help="with --calib-config: where its ${data_root} paths point "
                                                      "(default: $SLIMPOSE_DATA_ROOT if set, else ./data)")
    p.add_argument("--num-calib", type=int, default=64, help="calibration crops (default 64)")
    p.add_argument("--num-eval", type=int, default=32, help="held-out crops for the float vs INT8 comparison")
    p.add_argument("--threads", type=int, default=2)
    add_int8_arguments(p)
    p.add_argument("--json", metavar="PATH", help="write the comparison as JSON")


def run_quantize(args: argparse.Namespace) -> int:
    import onnx  # noqa: F401  (ONNX Runtime's quantiser needs it: a missing one is named before any work)

    from slimpose.deploy.quantize import compare_int8, quantize_int8

    if args.num_calib < 1 or args.num_eval < 0:
        raise SlimposeError("--num-calib must be >= 1 and --num-eval >= 0")
    check_onnx_out(args.out, [args.onnx])
    if args.json:
        check_file_out(args.json, "quantize.json", "--json")
    crops = calibration_crops(args.onnx, images_dir=args.calib_images, config=args.calib_config,
                              overrides=args.overrides, num=args.num_calib + args.num_eval,
                              data_root=args.data_root)
    # Hold out every k-th crop for the comparison so calibration and evaluation differ.
    n = len(crops)
    if args.num_eval and n > 1:
        eval_idx = set(spread(n, min(args.num_eval, n // 2)))
        calib = crops[[i for i in range(n) if i not in eval_idx]][: args.num_calib]
        held = crops[sorted(eval_idx)]
    else:
        calib, held = crops[: args.num_calib], crops
    info = quantize_int8(args.onnx, args.out, calib, **int8_options(args))
    cmp_ = compare_int8(args.onnx, args.out, held, threads=args.threads)
    print(f"wrote {info['path']} (QDQ INT8, {info['weights']}, activations {info['activations']}, "
          f"{plural(len(calib), 'calibration crop')}, {plural(info['float_nodes'], 'node')} left in float; "
          f"{info['size_float_mb']:.2f} MB -> {info['size_int8_mb']:.2f} MB)")
    print(f"latency batch {cmp_['batch']}, {cmp_['threads']} threads: float {cmp_['float_ms']:.2f} ms, "
          f"INT8 {cmp_['int8_ms']:.2f} ms, speed-up {cmp_['speedup']:.2f}x")
    pck_key = next(k for k in cmp_ if k.startswith("pck@"))
    print(f"INT8 vs float keypoints on {plural(cmp_['num_crops'], 'held-out crop')} ({cmp_['input']} input px): "
          f"mean error {cmp_['mean_kpt_err_px']:.2f} px, median {cmp_['median_kpt_err_px']:.2f} px, "
          f"{pck_key} agreement {100 * cmp_[pck_key]:.1f}% (thr {cmp_['pck_thr_px']:.1f} px)")
    if args.json:
        write_json(args.json, {"quantization": info, "comparison": cmp_})
    return 0

