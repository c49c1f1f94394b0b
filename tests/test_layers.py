"""The package's layers: a module imports from its own layer or lower only.

Every ``import`` and ``from ... import`` under src/slimpose is read with ``ast`` (also the
ones inside functions, methods and ``if`` blocks, and ``importlib.import_module("...")``
with a literal name), relative imports are resolved, and each module is placed in the
layer of the longest pattern of LAYERS that matches it. A module that no pattern matches
is an error too, so a new module gets placed here when it is added.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "slimpose"

# Bottom to top. "x.*" is the package or module x and everything below it; a name
# without ".*" is that one module only.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # 0: no slimpose imports above this line: errors, atomic IO, machine facts, keypoint
    #    layouts, box/affine geometry, the shipped-weight manifest registry (the
    #    slimpose.weights package's __init__, not its command) and stop signals.
    ("foundation", ("slimpose", "slimpose.errors", "slimpose.io", "slimpose.machine", "slimpose.keypoints",
                    "slimpose.geometry.*", "slimpose.weights", "slimpose.signals")),
    # 1: target encoding/decoding, metrics and drawing:
    #    array code on top of the foundation, knowing nothing of data sets or models.
    ("codecs/metrics/drawing", ("slimpose.codecs.*", "slimpose.metrics.*", "slimpose.drawing.*")),
    # 2: data sets and transforms; network definitions and their registry.
    ("data/models", ("slimpose.data.*", "slimpose.models.*")),
    # 3: the experiment config (validated against the registries below it).
    ("config", ("slimpose.config.*",)),
    # 4: training heads that own their losses (and their stage-end work).
    ("heads", ("slimpose.heads.*",)),
    # 5: training and checkpoint evaluation.
    ("engine", ("slimpose.engine.*",)),
    # 6: export, quantisation, the torch-free runtime, benchmarks.
    ("deploy", ("slimpose.deploy.*",)),
    # 7: detection, tracking and the pose pipeline on photos and videos.
    ("inference", ("slimpose.inference.*",)),
    # 8: the command line. Also every module named *.commands (see is_cli); those may
    #    not import one another.
    ("cli", ("slimpose.cli", "slimpose.cli_support", "slimpose.__main__", "slimpose.engine.quickstart")),
]
CLI_LAYER = len(LAYERS) - 1


def is_command_module(module: str) -> bool:
    return module.rsplit(".", 1)[-1] == "commands"


def layer_of(module: str) -> int | None:
    """The layer of ``module``: CLI rules first, then the longest matching pattern."""
    if is_command_module(module):
        return CLI_LAYER
    best: tuple[int, int] | None = None  # (pattern length, layer)
    for index, (_, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            if pattern.endswith(".*"):
                stem = pattern[:-2]
                hit = module == stem or module.startswith(stem + ".")
                length = len(stem)
            else:
                hit, length = module == pattern, len(pattern)
            if hit and (best is None or length > best[0]):
                best = (length, index)
    return None if best is None else best[1]


def layer_name(index: int) -> str:
    return f"{index} {LAYERS[index][0]}"


def module_files(src: Path, package: str = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package's __init__) for every .py of the package."""
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_pkg)
    return out


def imports_of(module: str, path: Path, is_pkg: bool, known: set[str],
               package: str = PACKAGE) -> list[tuple[str, int]]:
    """(imported package module, line) of every import in the file, wherever it stands."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module if is_pkg else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = here.split(".")
                base_parts = base_parts[:len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                # `from pkg import sub` imports the module pkg.sub when there is one.
                sub = f"{base}.{alias.name}"
                found.append((sub if sub in known else base, node.lineno))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name == "import_module" and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                found.append((node.args[0].value, node.lineno))
    return [(target, line) for target, line in found if target == package or target.startswith(package + ".")]


def layer_problems(src: Path = SRC, package: str = PACKAGE) -> list[str]:
    """One line per import that points up a layer, per *.commands module importing
    another, and per module (file or import target) that no layer names."""
    files = module_files(src, package)
    known = set(files)
    problems = []
    for module, (path, _) in files.items():
        if layer_of(module) is None:
            problems.append(f"{module}: in no layer ({path.relative_to(src)}); add it to LAYERS in tests/test_layers.py")
    unknown_targets = set()
    for module, (path, is_pkg) in files.items():
        mine = layer_of(module)
        if mine is None:
            continue
        lines: dict[str, list[int]] = {}  # imported module -> lines, in order of appearance
        for target, line in imports_of(module, path, is_pkg, known, package):
            lines.setdefault(target, [])
            if line not in lines[target]:
                lines[target].append(line)
        for target, at in lines.items():
            where = f"{path.relative_to(src)}:{','.join(map(str, sorted(at)))}"
            theirs = layer_of(target)
            if theirs is None:
                if target not in known and target not in unknown_targets:
                    unknown_targets.add(target)
                    problems.append(f"{target}: in no layer (imported by {module}, {where}); "
                                    f"add it to LAYERS in tests/test_layers.py")
            elif theirs > mine:
                problems.append(f"{module} -> {target}  ({layer_name(mine)} -> {layer_name(theirs)}; {where})")
            elif is_command_module(module) and is_command_module(target) and target != module:
                problems.append(f"{module} -> {target}  (a command module imports another; {where})")
    return problems


def test_no_import_points_up_a_layer():
    problems = layer_problems()
    assert not problems, f"{len(problems)} layer problem(s):\n" + "\n".join(problems)


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_checker_reports_an_upward_import_inside_a_function(tmp_path):
    src = write_package(tmp_path, {
        "slimpose/__init__.py": "",
        "slimpose/errors.py": "class E(Exception):\n    pass\n",
        "slimpose/keypoints.py": (
            "from slimpose.errors import E\n\n\n"
            "def f():\n"
            "    if True:\n"
            "        from slimpose.engine import train\n"
            "    return train, E\n"),
        "slimpose/engine/__init__.py": "",
        "slimpose/engine/train.py": "from ..keypoints import f\nfrom . import commands\n",
        "slimpose/engine/commands.py": "from slimpose.engine.train import f\n",
    })
    assert layer_problems(src) == [  # files in path order
        "slimpose.engine.train -> slimpose.engine.commands  (5 engine -> 8 cli; slimpose/engine/train.py:2)",
        "slimpose.keypoints -> slimpose.engine.train  (0 foundation -> 5 engine; slimpose/keypoints.py:6)",
    ]


def test_checker_reports_commands_importing_commands(tmp_path):
    src = write_package(tmp_path, {
        "slimpose/__init__.py": "",
        "slimpose/cli.py": "import importlib\nimportlib.import_module('slimpose.data.commands')\n",
        "slimpose/data/__init__.py": "",
        "slimpose/data/commands.py": "def run():\n    from slimpose.deploy.commands import run\n",
        "slimpose/deploy/__init__.py": "",
        "slimpose/deploy/commands.py": "run = None\n",
    })
    assert layer_problems(src) == [
        "slimpose.data.commands -> slimpose.deploy.commands  (a command module imports another; "
        "slimpose/data/commands.py:2)",
    ]


def test_checker_reports_a_module_in_no_layer(tmp_path):
    src = write_package(tmp_path, {
        "slimpose/__init__.py": "",
        "slimpose/mystery.py": "",
        "slimpose/io.py": "from slimpose import mystery\nimport slimpose.nowhere\n",
    })
    problems = layer_problems(src)
    assert len(problems) == 2
    assert problems[0].startswith("slimpose.mystery: in no layer (slimpose/mystery.py)")
    assert problems[1].startswith("slimpose.nowhere: in no layer (imported by slimpose.io, slimpose/io.py:2)")


def test_layer_table_rules():
    assert layer_of("slimpose") == 0 and layer_of("slimpose.weights") == 0
    assert layer_of("slimpose.weights.commands") == CLI_LAYER  # the CLI rule wins
    assert layer_of("slimpose.engine.quickstart") == CLI_LAYER and layer_of("slimpose.engine.train") == 5
    assert layer_of("slimpose.geometry") == 0 and layer_of("slimpose.drawing") == 1
    assert layer_of("slimpose.weights.extra") is None and layer_of("slimpose.errorsx") is None
