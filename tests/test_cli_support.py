"""The command modules share their helpers through slimpose.cli_support and never import
one another or slimpose.cli, so running one command imports only what it uses."""

from __future__ import annotations

import argparse
import ast
import importlib.util
from pathlib import Path

import pytest

from slimpose.cli import COMMANDS
from slimpose.cli_support import add_int8_arguments, int8_options, parse_hxw, spread

COMMAND_MODULES = sorted({module for module, _ in COMMANDS.values()})


def imported_modules(module: str) -> set[str]:
    """Every module ``module``'s source imports, at its top or inside a function."""
    tree = ast.parse(Path(importlib.util.find_spec(module).origin).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_a_command_module_imports_no_other_command_module_nor_the_cli(module):
    others = (set(COMMAND_MODULES) - {module}) | {"slimpose.cli"}
    assert not imported_modules(module) & others


def test_cli_support_imports_no_command_module():
    assert not imported_modules("slimpose.cli_support") & (set(COMMAND_MODULES) | {"slimpose.cli"})


def test_shared_option_helpers():
    assert parse_hxw(" 256X192 ") == (256, 192)
    for bad in ("256", "0x192", "256x-1", "axb"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected an input size HxW"):
            parse_hxw(bad)
    assert spread(3, 5) == [0, 1, 2] and spread(10, 3) == [0, 4, 9]
    p = argparse.ArgumentParser()
    add_int8_arguments(p)
    assert int8_options(p.parse_args(["--per-tensor", "--keep-float", "/stem/", "--full-range"])) == {
        "per_channel": False, "calibrate_method": "minmax", "keep_float": ("/stem/",), "float_attention": True,
        "reduce_range": False}
    assert int8_options(p.parse_args(["--reduce-range"]))["reduce_range"] is True
    assert int8_options(p.parse_args([]))["reduce_range"] is None  # by the CPU's VNNI
    with pytest.raises(SystemExit):
        p.parse_args(["--reduce-range", "--full-range"])


def test_plural():
    from slimpose.cli_support import plural

    assert plural(1, "person", "people") == "1 person"
    assert plural(0, "person", "people") == "0 people"
    assert plural(2, "image") == "2 images" and plural(1, "image") == "1 image"
