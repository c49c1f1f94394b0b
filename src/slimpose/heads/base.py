"""What every training head shares: options from ``model.head``, the model outputs it asks
for, its loss, and what it does when a stage of the schedule ends.

A head is built before its model (it may ask the model to return more in training, e.g.
per-position outputs), then bound to the built model (it checks the model fits and takes
the model's training-only parts its loss reads, e.g. RLE's flow). The engine calls
``head(outputs, target, target_weight)`` for the loss and ``stage_end(run)`` when a stage
ends; nothing is written on the model during its forward pass.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn as nn

from slimpose.config import build_dataclass
from slimpose.errors import ConfigError


@dataclass
class NoOptions:
    """A head without options: ``model.head`` must be empty."""


class Head(nn.Module):
    """Base of the training heads. ``Options`` is the dataclass that ``model.head`` fills."""

    Options: type = NoOptions

    def __init__(self, options: dict | None = None, heatmap_sigma: float = 2.0):
        super().__init__()
        options = dict(options or {})
        if options and not dataclasses.fields(self.Options):
            raise ConfigError(f"model.head: {type(self).__name__} takes no options, got {', '.join(sorted(options))}")
        self.options = build_dataclass(self.Options, options, "model.head")
        self.heatmap_sigma = heatmap_sigma
        self.check_options()

    def check_options(self) -> None:
        """Raise ConfigError naming ``model.head.FIELD`` for a value out of its domain."""

    def model_kwargs(self) -> dict:
        """Model keyword arguments the head needs (e.g. training outputs to return)."""
        return {}

    def bind(self, model: nn.Module) -> None:
        """Check that ``model`` gives what the loss reads; take its training-only parts."""

    def forward(self, outputs, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def stage_end(self, run) -> dict:
        """Called when a stage of the schedule ends (after the weight average is copied in),
        with the trainer as ``run``; returns entries for the epoch's log record."""
        return {}


def check(ok: bool, field: str, problem: str) -> None:
    if not ok:
        raise ConfigError(f"model.head.{field}: {problem}")
