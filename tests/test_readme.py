"""The README and the docs pages cannot drift from the code.

Every command of the bash blocks of README.md and docs/*.md is checked: each ``slimpose
X`` (also inside ``torchrun`` and in inline code spans) must parse with X's real argparse
parser, and every line that does not end in ``# needs: <what>`` is run, page after page
(README first, then DOC_PAGES in order), in one scratch folder laid out like a fresh clone
(``configs/`` and ``../shared`` beside it), with tiny sizes (a few images, one iteration)
added so the whole set runs in seconds. Then each page's ``python`` blocks run there.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from slimpose.cli import COMMANDS
from slimpose.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SHARED = ROOT.parent / "shared"
# The order their commands run in: a page may use what an earlier one made.
DOC_PAGES = ["README.md", "docs/training.md", "docs/custom_keypoints.md", "docs/deploy.md", "docs/inference.md",
             "docs/results_lsp.md", "docs/models.md", "docs/guarantees.md"]


def page_text(page: str) -> str:
    return (ROOT / page).read_text()

# Appended to a command's --set list (so the README's own values still win where
# they name the same field) or set as options, to make each run take seconds.
TINY_SET = {
    "train": ["train.epochs=1", "train.max_iters_per_epoch=1", "data.batch_size=2", "data.val_batch_size=4",
              "data.workers=0", "data.train.limit=4", "data.val.limit=4", "train.max_minutes=0"],
    "eval": ["data.val.limit=4", "data.workers=0"],
    "audit": ["data.train.limit=4", "data.val.limit=4"],
    "quickstart": ["data.batch_size=4", "train.max_iters_per_epoch=1", "data.val.limit=4"],
}
TINY_OPTIONS = {
    "data synthetic": {"--num-train": "6", "--num-val": "3"},
    "data show": {"--num": "2"},
    "quickstart": {"--num-train": "6", "--num-val": "3", "--epochs": "1"},
    "bench": {"--warmup": "1", "--iters": "2", "--input": "64x64"},
    "quantize": {"--num-calib": "2", "--num-eval": "2"},
}


@dataclass
class Command:
    argv: list[str]
    needs: str | None
    line: str


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def page_commands(text: str) -> list[Command]:
    """Each command of the bash blocks, split at ``&&``, with its ``# needs:`` note."""
    commands = []
    for block in bash_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            needs = re.search(r"#\s*needs:\s*(.+)$", line)
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # environment settings
                words = words[1:]
            argv: list[str] = []
            for word in words + ["&&"]:
                if word == "&&":
                    commands.append(Command(argv, needs.group(1).strip() if needs else None, line))
                    argv = []
                else:
                    argv.append(word)
    return commands


def inline_slimpose_commands(text: str) -> list[list[str]]:
    """``slimpose ...`` in inline code spans; ``[--opt X]`` brackets are optional parts."""
    spans = re.findall(r"(?<!`)`(slimpose [^`]+)`", text)
    return [shlex.split(span.replace("[", "").replace("]", "")) for span in spans]


def slimpose_argv(argv: list[str]) -> list[str] | None:
    """The ``slimpose`` arguments of a command (direct, ``python3 -m slimpose`` or torchrun)."""
    if argv[:1] == ["slimpose"]:
        return argv[1:]
    if "-m" in argv and argv[argv.index("-m") + 1:argv.index("-m") + 2] == ["slimpose"]:
        return argv[argv.index("-m") + 2:]
    return None


def parser_for(name: str) -> argparse.ArgumentParser:
    assert name in COMMANDS, f"a page names `slimpose {name}`, which is not a command"
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"slimpose {name}", exit_on_error=False)
    getattr(module, f"add_{name}_arguments")(parser)
    return parser


def check_parses(args: list[str], line: str) -> None:
    try:
        parser_for(args[0]).parse_args(args[1:])
    except (argparse.ArgumentError, SystemExit) as e:
        pytest.fail(f"command does not parse: {line}\n  {e}")


def command_key(args: list[str]) -> str:
    return " ".join(args[:2]) if args[0] == "data" else args[0]


def with_tiny_sizes(args: list[str]) -> list[str]:
    args = list(args)
    key = command_key(args)
    for option, value in TINY_OPTIONS.get(key, {}).items():
        if option in args:
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
    tiny = TINY_SET.get(key, [])
    if tiny and "--resume" not in args:  # a resumed run keeps its saved config
        if "--set" in args:
            end = next((j for j in range(args.index("--set") + 1, len(args)) if args[j].startswith("--")), len(args))
            args[end:end] = tiny
        else:
            args += ["--set", *tiny]
    return args


def test_every_doc_page_is_in_the_run_order():
    assert sorted(DOC_PAGES) == sorted(["README.md", *(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))])


def test_readme_has_the_two_ci_commands():
    lines = [c.line for c in page_commands(README)]
    assert 'python3 -m pip install torch==2.13.0 -e ".[train]" && slimpose quickstart --out quickstart' in lines
    assert 'python3 -m pip install torch==2.13.0 -e ".[train,test]" && python3 -m pytest -q -ra' in lines


def test_readme_is_a_short_guide():
    assert len(README.splitlines()) <= 300


@pytest.mark.parametrize("page", DOC_PAGES)
def test_page_commands_are_checkable(page):
    commands = page_commands(page_text(page))
    for command in commands:
        argv = command.argv
        if slimpose_argv(argv) is not None:
            check_parses(slimpose_argv(argv), command.line)
        elif argv[:4] == ["python3", "-m", "pip", "install"]:
            extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
            for spec in argv[4:]:
                named = re.fullmatch(r"-e|\.|\.\[(\w+(?:,\w+)*)\]|torch==[\d.]+", spec)
                assert named, f"{page}: pip install of something unexpected: {spec!r} in {command.line}"
                assert not named.group(1) or set(named.group(1).split(",")) <= extras, f"unknown extra in {command.line}"
        else:
            assert argv[:3] == ["python3", "-m", "pytest"], f"{page}: command this test cannot check: {command.line}"


@pytest.mark.parametrize("page", DOC_PAGES)
def test_inline_commands_parse(page):
    for argv in inline_slimpose_commands(page_text(page)):
        if len(argv) == 2:  # `slimpose infer` names the command, not a call of it
            assert argv[1] in COMMANDS, f"{page} names `slimpose {argv[1]}`, which is not a command"
        else:
            check_parses(argv[1:], f"{page}: {' '.join(argv)}")



# Run last and only in the slow test: a few seconds each on an idle machine, tens of
# seconds on a loaded one (ONNX exports, calibration, timed loops).
SLOW_COMMANDS = ("bench", "quantize")
# Commands that need an optional extra; without it they are only parsed.
EXTRA_MODULES = {"plot": "matplotlib"}


def runnable_commands(page: str) -> list[tuple[list[str], str]]:
    """(slimpose arguments, line) of every command of a page not marked ``# needs:``."""
    found = [(slimpose_argv(c.argv), c.line) for c in page_commands(page_text(page)) if not c.needs]
    return [(args, line) for args, line in found if args is not None]


def run_in(folder: Path, args: list[str], line: str) -> None:
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        rc = cli_main(with_tiny_sizes(args))
    finally:
        os.chdir(cwd)
    assert rc == 0, f"command failed (exit {rc}): {line}"


@pytest.fixture(scope="module")
def docs_clone(tmp_path_factory):
    """A folder laid out like a fresh clone, in which the commands of every page have run
    in order (all but SLOW_COMMANDS); with the command keys that ran, per page."""
    if not (SHARED / "data").is_dir():
        pytest.skip("needs ../shared/data beside the clone")
    root = tmp_path_factory.mktemp("readme")
    clone = root / "clone"
    clone.mkdir()
    (clone / "configs").symlink_to(ROOT / "configs")
    (root / "shared").symlink_to(SHARED)
    ran: dict[str, list[str]] = {}
    for page in DOC_PAGES:
        ran[page] = []
        for args, line in runnable_commands(page):
            extra = EXTRA_MODULES.get(args[0])
            if args[0] not in SLOW_COMMANDS and (extra is None or importlib.util.find_spec(extra)):
                run_in(clone, args, f"{page}: {line}")
                ran[page].append(command_key(args))
    return clone, ran


def test_every_runnable_page_command_runs(docs_clone):
    clone, ran = docs_clone
    assert {"quickstart", "train", "eval", "export", "infer"} <= set(ran["README.md"])
    assert {"data show", "train", "eval"} <= set(ran["docs/training.md"])
    assert "infer" in ran["docs/inference.md"] and "export" in ran["docs/deploy.md"]
    assert (clone / "eval_tinypose_best" / "metrics.json").is_file()
    assert (clone / "infer_gt" / "results.json").is_file()


@pytest.mark.slow
def test_page_deploy_commands_run(docs_clone):
    clone, _ = docs_clone
    slow = [(args, f"{page}: {line}") for page in DOC_PAGES for args, line in runnable_commands(page)
            if args[0] in SLOW_COMMANDS]
    assert {args[0] for args, _ in slow} == set(SLOW_COMMANDS)
    for args, line in slow:
        run_in(clone, args, line)


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_page_python_blocks_run(docs_clone):
    """Each ```python block of each page runs, in order, in the scratch clone after the
    commands (which exported lpn50.onnx there). The files a block names that no command
    makes are put in place first: the exported model under the name the block uses, a
    photo, a short video and the detector file from ../shared."""
    import shutil

    import cv2

    clone, _ = docs_clone
    detector = SHARED / "models" / "yolox_nano_416x416.onnx"
    if not detector.is_file():
        pytest.skip(f"needs {detector}")
    blocks = [(page, block) for page in DOC_PAGES for block in python_blocks(page_text(page))]
    assert len(python_blocks(README)) >= 2
    assert any("PoseTracker(" in b for _, b in blocks) and any("OnnxPoseEstimator(" in b for _, b in blocks)
    photo = next((SHARED / "data" / "coco-mini" / "val2017").glob("*.jpg"))
    shutil.copy(clone / "lpn50.onnx", clone / "repnet_a.onnx")  # any export does for the estimator lines
    shutil.copy(photo, clone / "photo.jpg")
    (clone / "yolox_nano_416x416.onnx").unlink(missing_ok=True)
    (clone / "yolox_nano_416x416.onnx").symlink_to(detector)
    frame = cv2.resize(cv2.imread(str(photo)), (320, 240))
    writer = cv2.VideoWriter(str(clone / "walk.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for _ in range(3):
        writer.write(frame)
    writer.release()
    cwd = Path.cwd()
    os.chdir(clone)
    try:
        namespaces = []
        for i, (page, block) in enumerate(blocks):
            namespace: dict = {"__name__": f"doc_block_{i}"}
            exec(compile(block, f"{page} python block {i + 1}", "exec"), namespace)
            namespaces.append(namespace)
    finally:
        os.chdir(cwd)
    estimate = next(ns for ns in namespaces if "estimator" in ns)
    assert estimate["keypoints"].shape == (1, 17, 2) and estimate["lsp"].layout.name == "lsp"
    track = next(ns for ns in namespaces if "video" in ns)
    assert track["video"].frame_index == 3 and track["video"].pose.layout.name == "lsp"
