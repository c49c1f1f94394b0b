"""RepNet's pooled-RLE head: RLE on the pooled Linear's output, with two optional
training-only terms and a closed-form refit of the Linear when a stage ends.

The global average of a translation-equivariant map does not move when the map moves, so
a pooled regression's gradient says only "raise this channel everywhere in this image",
and from random weights it stays at the mean pose. The options (``model.head``) free it:

- ``dense_weight`` > 0: the Linear applied at every position of the fused map (the model
  returns these ``positions``) is asked to equal a field whose mean over the grid is the
  joint, so each position gets its own gradient. ``dense_target`` picks the field
  ("gaussian": the joint's offset from the crop centre on the cells around the joint, the
  best measured; "displacement": every cell's displacement to the joint; "half_plane": the
  fraction of each cell on one side of the joint), ``dense_norm`` the per-position error
  ("mse" or "l1", summed over x and y, averaged over the grid), ``dense_sigma`` the
  Gaussian field's width in cells. ``teacher`` says where the field puts the joint:
  "ground_truth" (the label) or "auxiliary_heatmaps" (the highest cell of the model's own
  training-only heatmaps, not differentiated through: a function of the image the readout
  can match, where the label's expected position is not).
- ``heatmap_weight`` > 0: the model's training-only heatmap decoder
  (``model.kwargs.auxiliary_heatmaps``) is trained on unit-peak Gaussians of
  ``data.heatmap_sigma`` cells with the heatmap MSE, which trains the backbone and fusion as
  fast as a heatmap model's loss does.
- ``refit_crops`` > 0: when a stage ends, the Linear's coordinate rows are refitted by
  ridge regression (``refit_ridge``), Huber-robust beyond ``refit_huber`` of the crop, to
  the teacher's joints on that many training crops and their mirror images
  (:mod:`slimpose.heads.pooled_refit`).

The deployed model is unchanged by all three. The study that found them is
``projects/repnet_lspet``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from slimpose.errors import ConfigError
from slimpose.heads.base import check
from slimpose.heads.fields import (decomposed_coordinate_targets, displacement_coordinate_targets, grid_gaussians,
                                   half_plane_coordinate_targets, heatmap_argmax_joints)
from slimpose.heads.heatmap import KeypointMSELoss
from slimpose.heads.pooled_refit import refit_pooled_head
from slimpose.heads.rle import RLEHead

DENSE_TARGETS = ("gaussian", "displacement", "half_plane")
DENSE_NORMS = ("mse", "l1")
TEACHERS = ("ground_truth", "auxiliary_heatmaps")



def dense_goal(form: str, joints: torch.Tensor, height: int, width: int, sigma: float) -> torch.Tensor:
    """The per-position coordinates (N, K, H, W, 2) of field ``form`` for ``joints``."""
    if form == "gaussian":
        return decomposed_coordinate_targets(joints, height, width, sigma)
    if form == "displacement":
        return displacement_coordinate_targets(joints, height, width)
    return half_plane_coordinate_targets(joints, height, width)


@dataclass
class PooledRLEOptions:
    dense_weight: float = 0.0
    dense_sigma: float = 1.0
    dense_target: str = "gaussian"
    dense_norm: str = "mse"
    teacher: str = "ground_truth"
    heatmap_weight: float = 0.0
    refit_crops: int = 0
    refit_ridge: float = 1.0
    refit_huber: float = 0.05


class PooledRLEHead(RLEHead):
    """RLE of a pooled Linear (RepNet) plus the optional dense and heatmap terms and the
    stage-end refit described in the module docstring."""

    Options = PooledRLEOptions

    def __init__(self, options: dict | None = None, heatmap_sigma: float = 2.0):
        super().__init__(options, heatmap_sigma)
        self.mse = KeypointMSELoss(use_target_weight=True)

    def check_options(self) -> None:
        o = self.options
        for name in ("dense_weight", "heatmap_weight", "refit_crops", "refit_huber"):
            check(getattr(o, name) >= 0, name, f"must be 0 or more, got {getattr(o, name)}")
        check(o.dense_sigma > 0, "dense_sigma", f"must be positive, got {o.dense_sigma}")
        check(o.refit_ridge > 0, "refit_ridge", f"must be positive, got {o.refit_ridge}")
        for name, known in (("dense_target", DENSE_TARGETS), ("dense_norm", DENSE_NORMS), ("teacher", TEACHERS)):
            value = getattr(o, name)
            check(value in known, name, f"must be one of {', '.join(known)}, got {value!r}")
        check(o.teacher != "auxiliary_heatmaps" or o.heatmap_weight > 0, "teacher",
              "'auxiliary_heatmaps' needs the heatmaps trained: set model.head.heatmap_weight above 0")

    def model_kwargs(self) -> dict:
        return {"position_outputs": True} if self.options.dense_weight > 0 else {}

    def bind(self, model) -> None:
        super().bind(model)
        has_decoder = getattr(model, "heatmap_decoder", None) is not None
        if self.options.heatmap_weight > 0 and not has_decoder:
            raise ConfigError("model.head.heatmap_weight: the model has no training-only heatmap decoder; set "
                              "model.kwargs.auxiliary_heatmaps: true or the weight to 0")
        if has_decoder and self.options.heatmap_weight <= 0:
            # Its parameters would get no gradient (and DDP refuses unused parameters).
            raise ConfigError("model.kwargs.auxiliary_heatmaps: the heatmap decoder is trained only by "
                              "model.head.heatmap_weight; set that above 0 or the option to false")

    def forward(self, outputs, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
        parts = outputs if isinstance(outputs, dict) else {"joints": outputs}
        loss = self.rle(parts["joints"].float(), target, target_weight)
        o = self.options
        if o.dense_weight > 0:
            loss = loss + o.dense_weight * self.dense_error(parts["positions"], parts.get("heatmaps"), target,
                                                            target_weight)
        if o.heatmap_weight > 0:
            heatmaps = parts["heatmaps"].float()
            goal = grid_gaussians(target, heatmaps.shape[2], heatmaps.shape[3], self.heatmap_sigma)
            loss = loss + o.heatmap_weight * self.mse(heatmaps, goal, target_weight)
        return loss

    def dense_error(self, positions: torch.Tensor, heatmaps: torch.Tensor | None, target: torch.Tensor,
                    target_weight: torch.Tensor) -> torch.Tensor:
        """The weighted per-position error against the field, divided by N."""
        n, h, w, k = positions.shape[:4]
        o = self.options
        joints = target if o.teacher == "ground_truth" else heatmap_argmax_joints(heatmaps.detach().float())
        goal = dense_goal(o.dense_target, joints, h, w, o.dense_sigma)
        diff = positions[..., :2].permute(0, 3, 1, 2, 4).float() - goal
        err = (diff.abs() if o.dense_norm == "l1" else diff**2).mean((2, 3)).sum(-1)  # (N, K)
        return (err * target_weight.reshape(n, k)).sum() / n

    def stage_end(self, run) -> dict:
        o = self.options
        if o.refit_crops <= 0:
            return {}
        result = refit_pooled_head(run.model, run.unaugmented_train_set(), run.codec, crops=o.refit_crops,
                                   ridge=o.refit_ridge, huber=o.refit_huber, teacher=o.teacher,
                                   seed=run.cfg.train.seed, batch_size=run.cfg.data.val_batch_size,
                                   workers=run.cfg.data.workers, info=run.info)
        if run.info.is_main:
            print(f"slimpose: head refit on {result['crops']} crops and their mirror images: RMS distance to the "
                  f"teacher {result['rms_before']:.4f} -> {result['rms_after']:.4f} of the crop "
                  f"({result['seconds']:.0f} s)", flush=True)
        return {"head_refit": result}
