"""Closed-form refit of a pooled-regression head (RepNet).

RepNet's coordinates are a Linear of the globally pooled fused map, so given the trained
features the squared error of that Linear to any target is a ridge regression with an
exact solution. Gradient steps approach it only slowly: on LSPET at LPN-50's budget the
solution moves RepNet-A's val PCK@0.2 from 17.5 to about 20 with the features untouched
(README, "Refitting the readout"). The refit reads training crops as a test crop is
read (no augmentation, eval-mode BatchNorm) together with their mirror images, as the
flip test reads them, and fits each joint's x and y rows of the Linear, weighting every
sample by the joint's target weight. The target is the readout's teacher: the labels, or
the highest cell of the model's training-only heatmaps. Only the coordinate rows change;
the sigma rows (the keypoint scores) and everything before the Linear are left as trained.

Under torchrun every process reads its share of the crops; the normal equations are
summed over processes, so all of them solve the same system.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Subset

from slimpose.engine.distributed import DistInfo
from slimpose.losses import heatmap_argmax_joints


def supports_head_refit(model: nn.Module) -> bool:
    """Whether ``model`` regresses through a Linear of its pooled fused map (RepNet)."""
    return hasattr(model, "fused_features") and isinstance(getattr(model, "head", None), nn.Linear)


def _teacher_joints(model: nn.Module, fused: torch.Tensor, labels: torch.Tensor, teacher: str) -> torch.Tensor:
    if teacher == "ground_truth":
        return labels
    return heatmap_argmax_joints(model.heatmap_decoder(fused).float())


@torch.no_grad()
def accumulate_normal_equations(model: nn.Module, loader: DataLoader, codec, flip_index: list[int], teacher: str,
                                device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per joint, the weighted Gram matrix of [pooled features, 1] (K, C+1, C+1), its
    products with the teacher's (x, y) (K, C+1, 2) and the weighted sum of squared targets
    (K,), over every crop of ``loader`` and its mirror image."""
    gram = cross = squares = None
    for batch in loader:
        images = batch["image"].to(device)
        labels, weights = batch["target"].numpy(), batch["target_weight"].numpy()
        mirrored_labels = codec.flip(labels, flip_index).astype(np.float32)  # the mirrored crop's joints
        for x, lab, w in ((images, labels, weights), (images.flip(-1), mirrored_labels, weights[:, flip_index])):
            fused = model.fused_features(x)
            joints = _teacher_joints(model, fused, torch.from_numpy(lab).to(device), teacher).double()
            pooled = fused.mean((2, 3)).double()
            feats = torch.cat([pooled, torch.ones_like(pooled[:, :1])], 1)  # (N, C+1)
            wk = torch.from_numpy(np.ascontiguousarray(w)).to(device).double()  # (N, K)
            g = torch.einsum("nk,nc,nd->kcd", wk, feats, feats)
            c = torch.einsum("nk,nc,nkj->kcj", wk, feats, joints[..., :2])
            q = torch.einsum("nk,nkj->k", wk, joints[..., :2] ** 2)
            gram, cross, squares = (g, c, q) if gram is None else (gram + g, cross + c, squares + q)
    return gram, cross, squares


def ridge_solution(gram: torch.Tensor, cross: torch.Tensor, ridge: float) -> torch.Tensor:
    """argmin_B sum w ||[f, 1] B - y||^2 + ridge ||B without its bias row||^2, per joint: (K, C+1, 2)."""
    penalty = torch.full((gram.shape[-1],), float(ridge), dtype=gram.dtype, device=gram.device)
    penalty[-1] = 0.0  # the bias is not shrunk
    return torch.linalg.solve(gram + torch.diag(penalty), cross)


def weighted_rms(gram: torch.Tensor, cross: torch.Tensor, squares: torch.Tensor, coef: torch.Tensor,
                 mass: torch.Tensor) -> float:
    """Root of the weighted mean squared distance (crop fractions) between [f, 1] ``coef``
    and the targets, from the normal equations alone."""
    sse = squares - 2 * (coef * cross).sum((1, 2)) + torch.einsum("kcj,kcd,kdj->k", coef, gram, coef)
    return float(torch.sqrt(sse.sum().clamp_min(0) / mass.sum().clamp_min(1e-12)))


def refit_pooled_head(model: nn.Module, dataset, codec, *, crops: int, ridge: float, teacher: str, seed: int,
                      batch_size: int, workers: int, info: DistInfo) -> dict:
    """Refit ``model.head``'s coordinate rows (joint k's x and y are rows 4k and 4k+1) in
    place; returns what happened: crops read, the pooled head's weighted RMS distance to the
    teacher before and after (crop fractions), seconds."""
    start = time.perf_counter()
    head: nn.Linear = model.head
    k = head.out_features // 4
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:crops]
    shard = order[info.rank::info.world_size].tolist()
    loader = DataLoader(Subset(dataset, shard), batch_size=batch_size, shuffle=False, num_workers=workers)
    was_training = model.training
    model.eval()
    gram, cross, squares = accumulate_normal_equations(model, loader, codec, dataset.source.layout.flip_index,
                                                       teacher, info.device)
    model.train(was_training)
    if gram is None:  # a process without crops adds zeros to the sums
        c = head.in_features + 1
        gram = torch.zeros(k, c, c, dtype=torch.float64, device=info.device)
        cross = torch.zeros(k, c, 2, dtype=torch.float64, device=info.device)
        squares = torch.zeros(k, dtype=torch.float64, device=info.device)
    if info.distributed:
        for t in (gram, cross, squares):
            torch.distributed.all_reduce(t)
    mass = gram[:, -1, -1]  # per joint, the summed target weights
    rows = torch.arange(k, device=head.weight.device)[:, None] * 4 + torch.arange(2, device=head.weight.device)
    old = torch.cat([head.weight[rows].detach(), head.bias[rows].detach()[..., None]], -1)  # (K, 2, C+1)
    old = old.transpose(1, 2).double().to(gram.device)
    fitted = mass > 0  # a joint never labelled in the crops keeps its trained rows
    new = old.clone()
    if fitted.any():
        new[fitted] = ridge_solution(gram[fitted], cross[fitted], ridge)
    with torch.no_grad():
        head.weight[rows] = new[:, :-1].transpose(1, 2).to(head.weight)
        head.bias[rows] = new[:, -1].to(head.bias)
    return {"crops": len(order), "joints_fitted": int(fitted.sum()),
            "rms_before": round(weighted_rms(gram, cross, squares, old, mass), 5),
            "rms_after": round(weighted_rms(gram, cross, squares, new, mass), 5),
            "seconds": round(time.perf_counter() - start, 1)}
