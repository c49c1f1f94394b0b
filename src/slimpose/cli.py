"""The ``slimpose`` command.

Each sub-command lives in the module that does the work, which defines
``add_<name>_arguments(parser)`` and ``run_<name>(args) -> int``. Modules are imported
only for the command being run, so ``slimpose --help`` and the torch-free commands
stay fast and do not import torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap

from slimpose import __version__
from slimpose.errors import SlimposeError

COMMANDS: dict[str, tuple[str, str]] = {
    "quickstart": ("slimpose.engine.quickstart", "draw bundled photos; train, evaluate and draw a small model"),
    "train": ("slimpose.engine.commands", "train a model from a YAML config"),
    "eval": ("slimpose.engine.commands", "evaluate a checkpoint, or score a COCO results file"),
    "audit": ("slimpose.engine.commands", "list people whose left/right labels look exchanged (a model as judge)"),
    "plot": ("slimpose.engine.plot", "training curves of a run, or accuracy against latency (matplotlib)"),
    "data": ("slimpose.data.commands", "synthetic data generation and augmented-crop pictures"),
    "models": ("slimpose.deploy.commands", "list registered models"),
    "complexity": ("slimpose.deploy.commands", "params and GMACs of models beside the papers' figures"),
    "export": ("slimpose.deploy.commands", "export a model to ONNX and check it against PyTorch"),
    "bench": ("slimpose.deploy.commands", "CPU/GPU latency of models in PyTorch and ONNX Runtime"),
    "quantize": ("slimpose.deploy.commands", "INT8 static quantisation of an exported ONNX model"),
    "weights": ("slimpose.weights.commands", "list the shipped trained weights, or pack a training run into one"),
    "infer": ("slimpose.inference.commands", "poses in photos, videos and camera frames (detector, tracking; torch-free)"),
}


# One example per command, shown by 'slimpose --help' and at the end of 'slimpose X --help'.
EXAMPLES: dict[str, str] = {
    "quickstart": "slimpose quickstart --out quickstart",
    "train": "slimpose train configs/tinypose_synthetic_128x96.yaml --work-dir work_dirs/tinypose "
             "--set train.epochs=10",
    "eval": "slimpose eval --checkpoint work_dirs/tinypose/best.pth --out eval_tinypose/metrics.json",
    "audit": "slimpose audit my_data.yaml --model work_dirs/mine/best.onnx --out audit.json",
    "plot": "slimpose plot work_dirs/tinypose --out tinypose_curves.png",
    "data": "slimpose data synthetic --out data/synthetic --num-train 600 --num-val 100",
    "models": "slimpose models --json models.json",
    "complexity": "slimpose complexity lpn_50 repnet_a --input 256x192",
    "export": "slimpose export lpn_50 --checkpoint work_dirs/lpn50_mini/best.pth --out lpn50.onnx",
    "bench": "slimpose bench lpn_50 lpn50.onnx --backend onnxruntime --threads 2",
    "quantize": "slimpose quantize lpn50.onnx --out lpn50_int8.onnx --calib-images ../shared/data/coco-mini/val2017",
    "weights": "slimpose weights --json weights.json",
    "infer": "slimpose infer lpn_50_lsp_192x144 photos/ --detector yolox_nano_416x416.onnx --out poses/",
}

DESCRIPTION = (
    "slimpose trains, evaluates and deploys small top-down 2D human pose models: a person box in, one point per "
    "joint out. Train from a YAML config, score a checkpoint or an exported ONNX file, export and quantise for "
    "CPUs, and run photos, videos or a camera through a person detector and the pose model without PyTorch. "
    "Shipped weight names (see 'slimpose weights') work wherever an ONNX file or checkpoint is taken."
)


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: slimpose <command> [options]   (slimpose {__version__})", "",
             *textwrap.wrap(DESCRIPTION, 100), "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "examples:"]
    lines += [f"  {EXAMPLES[name]}" for name in COMMANDS]
    lines += ["", "Run 'slimpose <command> --help' for a command's options."]
    return "\n".join(lines)


def build_parser(name: str, module) -> argparse.ArgumentParser:
    """The argparse parser of command ``name``: its options, its own epilog (wrapped) and
    an example."""
    parser = argparse.ArgumentParser(prog=f"slimpose {name}", description=COMMANDS[name][1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    getattr(module, f"add_{name}_arguments")(parser)
    epilog = "\n".join(textwrap.wrap(parser.epilog, 100)) + "\n\n" if parser.epilog else ""
    parser.epilog = f"{epilog}example:\n  {EXAMPLES[name]}"
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:  # a closed pipe shows up at this flush for short outputs (argparse's --help exit too)
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader closed the pipe (``slimpose models | head -1``): stop quietly. Python
        # flushes stdout again at exit; point it at devnull so that flush cannot fail too.
        _silence_stdout()
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by a closed pipe


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout replaced (tests) or already closed
        pass


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        print(__version__)
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"slimpose: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(COMMANDS[name][0])
        parser = build_parser(name, module)
        args = parser.parse_args(argv[1:])
        return int(getattr(module, f"run_{name}")(args) or 0)
    except SlimposeError as e:
        print(f"slimpose {name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"slimpose {name}: interrupted", file=sys.stderr)
        return 130
    except ImportError as e:
        missing = missing_extra(name, e)
        if missing is None:
            raise
        what, extra = missing
        reason = " ".join(str(e).split())
        print(f'slimpose {name} needs {what}: pip install "slimpose[{extra}]" ({reason})', file=sys.stderr)
        return 2


def missing_extra(command: str, error: ImportError) -> tuple[str, str] | None:
    """What a command lacks when ``error`` stopped it, and the extra that installs it:
    ("PyTorch", "train") where torch failed to import (:func:`torch_missing`), ("onnx",
    "quantize") where quantize lacks the onnx package, ("onnx", "train") where another
    command (export, bench) does; None for any other ImportError (a bug: re-raised)."""
    if error.name is not None and error.name.partition(".")[0] == "onnx":
        return "onnx", "quantize" if command == "quantize" else "train"
    if torch_missing(error):
        return "PyTorch", "train"
    return None


def torch_missing(error: ImportError) -> bool:
    """Whether ``error`` is PyTorch failing to import: not installed (the error names it),
    or installed but broken (an error raised while torch imports names no module; torch
    then fails to import here too). The torch-free commands (infer, eval --onnx, weights,
    quantize) never get here; the others import torch when they run."""
    if error.name is not None:
        return error.name.partition(".")[0] in ("torch", "torchvision")
    try:
        import torch  # noqa: F401
    except ImportError:
        return True
    return False
