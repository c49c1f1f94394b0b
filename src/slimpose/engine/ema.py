"""Exponential moving average of a model's weights (timm's ``ModelEma``, MMPose's EMAHook).

Under a constant or slowly decaying lr the last weights carry the noise of the last steps,
and their average is often the better model (RTMPose trains with one); under a cosine to
zero the schedule already anneals that noise away (projects/repnet_lspet/README.md
measures no gain on its short LSPET recipe). The trainer validates, checkpoints and
exports the average and keeps the raw weights only to go on training.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn

from slimpose.errors import ConfigError


def _weights_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class WeightAverage:
    """``average = d * average + (1 - d) * weights`` after every ``interval``-th optimiser
    step, over the parameters and floating-point buffers (BN statistics); integer buffers
    are copied. Per update ``d = min(decay ** interval, (1 + n) / (10 + n))`` after ``n``
    updates. The ramp forgets the random initialisation within the first updates, and for
    the first ``~9 / (1 - decay ** interval)`` updates it, not ``decay``, sets the span:
    about the last ninth of the steps so far. An interval > 1 averages the same span of
    steps for a fraction of the memory traffic (an update reads and writes every weight:
    12 ms against a 290 ms step for RepNet-A at batch 8 on one CPU thread)."""

    def __init__(self, model: nn.Module, decay: float, interval: int = 1):
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"train.ema_decay: must lie in (0, 1) (0 turns the average off), got {decay}")
        if interval < 1:
            raise ConfigError(f"train.ema_interval: must be at least 1 step, got {interval}")
        self.decay, self.interval = decay, interval
        self.reset(model)

    def current_decay(self) -> float:
        """The decay of the next update."""
        n = self.steps // self.interval
        return min(self.decay ** self.interval, (1 + n) / (10 + n))

    @torch.no_grad()
    def step(self, model: nn.Module) -> None:
        """Count one optimiser step; average ``model`` in when the interval is complete."""
        if (self.steps + 1) % self.interval:
            self.steps += 1
            return
        d = self.current_decay()
        self.steps += 1
        for name, value in model.state_dict().items():
            kept = self.average[name]
            if kept.is_floating_point():
                kept.lerp_(value.detach(), 1.0 - d)
            else:
                kept.copy_(value)

    def copy_to(self, model: nn.Module) -> None:
        model.load_state_dict(self.average, strict=True)

    def reset(self, model: nn.Module, steps: int = 0) -> None:
        """Start the average from ``model``'s weights: a new stage of the schedule, or a
        resumed run whose checkpoint holds the average after ``steps`` steps."""
        self.steps = steps
        self.average = _weights_copy(model)

    @contextmanager
    def applied(self, model: nn.Module):
        """``model`` holds the average inside the block and its own weights again after it."""
        own = _weights_copy(model)
        self.copy_to(model)
        try:
            yield model
        finally:
            model.load_state_dict(own, strict=True)
