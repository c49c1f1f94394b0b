"""Telling a diverging run from a noisy one, so that it stops before its weights reach a
checkpoint: a loss that is not finite or far above its recent level, weights that are not
finite."""

from __future__ import annotations

import math

import torch.nn as nn


class LossWatch:
    """Follows the running level of the training loss (an average of its magnitude) and
    names a loss that left it.

    A loss more than ``factor`` times its level is no spike of a sound run: pose losses
    move by a few times between batches, a diverged run's by many orders of magnitude
    (lr 1e6 took a heatmap loss from 1e-3 to 1e22 in a few steps). ``floor`` keeps a level
    near zero (RLE's loss crosses zero as it trains) from making every step look large.
    """

    def __init__(self, factor: float = 1e4, floor: float = 0.01, warmup: int = 5, momentum: float = 0.98):
        self.factor, self.floor, self.warmup, self.momentum = factor, floor, warmup, momentum
        self.level: float | None = None
        self.seen = 0

    def state(self) -> dict:
        return {"level": self.level, "seen": self.seen}

    def load_state(self, state: dict | None) -> None:
        """Continue from a checkpoint's level (none in checkpoints older than the watch)."""
        if state:
            self.level, self.seen = state["level"], state["seen"]

    def problem(self, loss: float) -> str | None:
        """Why ``loss`` shows divergence, or None (and it joins the level)."""
        if not math.isfinite(loss):
            return f"loss became {loss}"
        if self.level is not None and self.seen >= self.warmup:
            limit = self.factor * max(self.level, self.floor)
            if abs(loss) > limit:
                return f"loss jumped to {loss:.3g}, over {self.factor:.0e} times its running level {self.level:.3g}"
        magnitude = abs(loss)
        self.level = magnitude if self.level is None else self.momentum * self.level + (1 - self.momentum) * magnitude
        self.seen += 1
        return None


def non_finite_weights(model: nn.Module) -> list[str]:
    """Names of the parameters and buffers holding NaN or infinite values."""
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    return [name for name, t in tensors if t.is_floating_point() and not bool(t.detach().isfinite().all())]
