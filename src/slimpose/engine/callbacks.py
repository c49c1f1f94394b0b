"""Training callbacks: what the loop does around its steps beyond the step itself.

The trainer calls every callback's hooks in list order with itself as ``trainer`` (it
exposes ``model``, ``cfg``, ``codec``, ``info`` and ``unaugmented_train_set()``). The
weight average and the head's stage-end work are callbacks; a project adds its own with
``Trainer(..., callbacks=[...])`` or ``train(..., callbacks=[...])``.
"""

from __future__ import annotations

from contextlib import nullcontext

from slimpose.engine.checkpoint import load_model_weights
from slimpose.engine.distributed import broadcast_buffers
from slimpose.engine.ema import WeightAverage


class Callback:
    """No-op hooks; subclasses override the ones they need."""

    def on_step_end(self, trainer) -> None:
        """After every optimiser step."""

    def on_stage_start(self, trainer) -> None:
        """A later stage of the iterative schedule starts (new weights, fresh optimiser)."""

    def on_stage_end(self, trainer, record: dict) -> None:
        """A stage ended (or the time budget did), before its validation; ``record`` is the
        epoch's log record, to which the callback may add entries."""

    def on_resume(self, trainer, checkpoint: dict) -> None:
        """The model holds the checkpoint's "model" weights; restore the callback's state."""

    def checkpoint_entries(self, trainer) -> dict:
        """Entries this callback adds to (or replaces in) every checkpoint."""
        return {}

    def evaluation_weights(self, trainer):
        """A context in which the model holds the weights to validate."""
        return nullcontext()


class WeightAverageCallback(Callback):
    """``train.ema_decay``: validate, checkpoint (as "model") and export the exponential
    moving average; keep the raw weights as "train_weights" to go on training."""

    def __init__(self, trainer):
        tc = trainer.cfg.train
        self.ema = WeightAverage(trainer.model, tc.ema_decay, tc.ema_interval)

    def on_step_end(self, trainer) -> None:
        self.ema.step(trainer.model)

    def on_stage_start(self, trainer) -> None:
        self.ema.reset(trainer.model)

    def on_stage_end(self, trainer, record: dict) -> None:
        self.ema.copy_to(trainer.model)  # a stage ends on its average

    def on_resume(self, trainer, checkpoint: dict) -> None:
        self.ema.reset(trainer.model, int(checkpoint.get("ema_steps", 0)))
        if "train_weights" in checkpoint:
            load_model_weights(trainer.model, {"model": checkpoint["train_weights"], "meta": checkpoint.get("meta")})

    def checkpoint_entries(self, trainer) -> dict:
        return {"model": self.ema.average, "train_weights": trainer.model.state_dict(), "ema_steps": self.ema.steps}

    def evaluation_weights(self, trainer):
        return self.ema.applied(trainer.model)


class HeadStageEndCallback(Callback):
    """The training head's stage-end work (e.g. the pooled-RLE head's refit), on weights
    that every process holds alike."""

    def on_stage_end(self, trainer, record: dict) -> None:
        broadcast_buffers(trainer.model, trainer.info)
        record.update(trainer.head.stage_end(trainer))


def default_callbacks(trainer) -> list[Callback]:
    """The weight average (when ``train.ema_decay`` is set) before the head's stage-end
    work, so a refit reads the averaged features."""
    ema = [WeightAverageCallback(trainer)] if trainer.cfg.train.ema_decay != 0 else []
    return [*ema, HeadStageEndCallback()]
