"""slimpose.cli: every sub-command's options."""

from __future__ import annotations

import argparse
import importlib

from slimpose.cli import COMMANDS
from slimpose.codecs import DECODE_METHODS


def _decode_options() -> dict[str, argparse.Action]:
    found = {}
    for name, (module, _) in COMMANDS.items():
        parser = argparse.ArgumentParser()
        getattr(importlib.import_module(module), f"add_{name}_arguments")(parser)
        for action in parser._actions:
            if "--decode" in action.option_strings:
                found[name] = action
    return found


def test_every_decode_option_offers_the_codecs_methods():
    options = _decode_options()
    assert {"eval", "export", "infer", "weights"} <= set(options)
    for name, action in options.items():
        assert tuple(action.choices) == DECODE_METHODS, name
        assert action.default is None, f"slimpose {name}: no --decode means the run's or the model's decoding"
