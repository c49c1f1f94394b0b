"""What ``pip install slimpose`` (no extras) installs runs without PyTorch.

The slow test builds the package from a copy of this checkout into a fresh virtual
environment (a plain one: the system's torch is not visible in it), with the base
dependencies only, and runs the torch-free commands with the installed ``slimpose``
script: ``weights``, and ``infer`` with a shipped weight on a generated photo. It skips
only when no package index can be reached. The fast tests check the metadata and that
CI runs the README's test command.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from slimpose.weights import get_weight, list_weights

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# The base installation: the torch-free runtime and its commands.
BASE = {"numpy", "opencv-python-headless", "onnxruntime", "pycocotools", "scipy", "pyyaml", "tqdm"}
WEIGHT = get_weight("lpn_50_lsp_128x96_int8")  # an LSP-14 model, as the data below


def requirement_name(spec: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", spec).group(0).lower().replace("_", "-")


def test_base_dependencies_are_torch_free_and_extras_add_the_rest():
    project = PYPROJECT["project"]
    assert {requirement_name(s) for s in project["dependencies"]} == BASE
    extras = {name: {requirement_name(s) for s in specs} for name, specs in project["optional-dependencies"].items()}
    assert extras["train"] == {"torch", "onnx"} and extras["quantize"] == {"onnx"}
    assert {"pytest", "matplotlib"} <= extras["test"] and extras["plot"] == {"matplotlib"}
    torch_spec = next(s for s in project["optional-dependencies"]["train"] if requirement_name(s) == "torch")
    assert "==" not in torch_spec, "the package accepts a range of torch; commands pin the CPU wheel"
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    license_text = (REPO / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text and "APPENDIX: How to apply" in license_text


def shell_commands(text: str) -> list[str]:
    """The commands of a script or README line, split at ``&&``, whitespace normalised."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out += [" ".join(shlex.split(c)) for c in line.split("&&")]
    return out


def test_ci_installs_and_tests_as_the_readme_says():
    readme = (REPO / "README.md").read_text()
    quickstart, tests = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)[:2]
    install, run = shell_commands(tests)
    assert install == 'python3 -m pip install torch==2.13.0 -e .[train,test]' and run.startswith("python3 -m pytest")
    assert shell_commands(quickstart)[0] == "python3 -m pip install torch==2.13.0 -e .[train]"
    ci = shell_commands((REPO / ".ci" / "run").read_text())
    assert install.replace("install ", "install -q ") in ci and ci[-1] == run


def index_reachable(timeout: float = 5.0) -> bool:
    """Whether pip's package index answers (a file:// index: whether it exists)."""
    url = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple/").split()[0]
    if url.startswith("file://"):
        return Path(url[len("file://"):]).is_dir()
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/pip/", timeout=timeout):
            return True
    except OSError:
        return False


def clean_env(venv: Path) -> dict:
    """An environment that sees the virtual environment only (no PYTHONPATH to the checkout)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    return {**env, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            "OMP_NUM_THREADS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@pytest.fixture(scope="module")
def base_install(tmp_path_factory) -> tuple[Path, dict]:
    """(venv, environment) of a fresh virtual environment with ``pip install <checkout>``."""
    if not index_reachable():
        pytest.skip("no package index reachable to install the base dependencies from")
    root = tmp_path_factory.mktemp("packaging")
    source = root / "slimpose"  # a copy: building in the checkout would leave build/ and egg-info there
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = clean_env(venv)
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--prefer-binary", str(source)],
                          capture_output=True, text=True, env=env, cwd=root, timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return venv, env


def venv_python(base_install, code: str) -> subprocess.CompletedProcess:
    venv, env = base_install
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, env=env,
                          cwd=venv.parent, timeout=300)


@pytest.mark.slow
def test_base_install_has_no_torch_and_ships_the_license(base_install):
    proc = venv_python(base_install, "import torch")
    assert proc.returncode != 0 and "No module named 'torch'" in proc.stderr
    proc = venv_python(base_install, "import onnx")
    assert proc.returncode != 0 and "No module named 'onnx'" in proc.stderr
    venv, _ = base_install
    code = ("import importlib.metadata as m, json, slimpose\n"
            "d = m.distribution('slimpose')\n"
            "print(json.dumps({'file': slimpose.__file__, 'license': d.metadata['License-Expression'],\n"
            "  'files': [str(f) for f in d.files if 'LICENSE' in str(f)]}))\n")
    proc = venv_python(base_install, code)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert Path(found["file"]).is_relative_to(venv), "slimpose must come from the installed wheel"
    assert found["license"] == "Apache-2.0"
    (license_file,) = found["files"]
    installed = (Path(found["file"]).parents[1] / license_file).read_text()
    assert installed == (REPO / "LICENSE").read_text()


@pytest.mark.slow
def test_base_install_imports_every_command_module(base_install):
    """No module a command loads imports torch at import time (the torch-free commands
    run; the others say what they need when they run)."""
    from slimpose.cli import COMMANDS

    modules = sorted({module for module, _ in COMMANDS.values()})
    proc = venv_python(base_install, f"import importlib, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
                                     "assert 'torch' not in sys.modules\n")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_base_install_runs_weights_and_infer(base_install, tmp_path):
    venv, env = base_install
    slimpose = str(venv / "bin" / "slimpose")
    proc = subprocess.run([slimpose, "weights"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert all(w.name in proc.stdout for w in list_weights())

    image = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(image), cv2.GaussianBlur(rng.integers(0, 255, (160, 120, 3), dtype=np.uint8), (5, 5), 2))
    out = tmp_path / "out"
    proc = subprocess.run([slimpose, "infer", WEIGHT.name, str(image), "--out", str(out), "--threads", "1"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    (result,) = json.loads((out / "results.json").read_text())
    assert result["image_id"] == "photo.png" and len(result["keypoints"]) == 14 * 3

    proc = subprocess.run([slimpose, "export", "tinypose", "--out", "model.onnx"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        'slimpose export needs PyTorch: pip install "slimpose[train]" (No module named \'torch\')']
