"""Closed-form refit of the pooled-RLE head's Linear (RepNet), run when a stage ends.

RepNet's coordinates are a Linear of the globally pooled fused map, so given the trained
features, fitting that Linear to a target is a (weighted) ridge regression with an exact
solution, which gradient steps only approach. The refit reads training crops as a test crop
is read (no augmentation, eval-mode BatchNorm) together with their mirror images, as the
flip test reads them, and fits each joint's x and y rows of the Linear to the readout's
teacher: the labels, or the highest cell of the model's training-only heatmaps. Every
sample counts with the joint's target weight.

The fit is Huber-robust (iteratively reweighted least squares): a sample whose distance to
the fit exceeds ``huber`` (crop fractions) counts as ``huber / distance`` of itself, so
joints the features cannot place (a hidden wrist, a left/right swap) stop pulling the
readout away from the ones they can, which is what PCK counts. ``huber=0`` is plain
least squares. Only the coordinate rows change; the sigma rows (the keypoint scores) and
everything before the Linear are left as trained.

Under torchrun every process reads its share of the crops and the normal equations are
summed over processes at each iteration, so all of them solve the same system. ``info`` is
the trainer's process description (``slimpose.engine.distributed.DistInfo``: rank,
world_size, device, distributed).
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Subset

from slimpose.heads.fields import heatmap_argmax_joints
from slimpose.models.reparam import reparameterize_model

HUBER_ITERATIONS = 8


@torch.no_grad()
def readout_samples(model: nn.Module, decoder: nn.Module | None, loader: DataLoader, codec, flip_index: list[int],
                    teacher: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For every crop of ``loader`` and its mirror image: [pooled ``model.fused_features``, 1]
    (S, C+1), the teacher's joints (S, K, 2: the highest cell of ``decoder``'s heatmaps of
    those features, or the labels) and the target weights (S, K), in float64."""
    feats, joints, weights = [], [], []
    for batch in loader:
        images = batch["image"].to(device)
        labels, w = batch["target"].numpy(), batch["target_weight"].numpy()
        mirrored = codec.flip(labels, flip_index).astype(np.float32)  # the mirrored crop's joints
        for x, lab, wt in ((images, labels, w), (images.flip(-1), mirrored, w[:, flip_index])):
            fused = model.fused_features(x)
            if teacher == "ground_truth":
                target = torch.from_numpy(lab[..., :2]).to(device)
            else:
                target = heatmap_argmax_joints(decoder(fused).float())
            pooled = fused.mean((2, 3)).double()
            feats.append(torch.cat([pooled, torch.ones_like(pooled[:, :1])], 1))
            joints.append(target.double())
            weights.append(torch.from_numpy(np.ascontiguousarray(wt)).to(device).double())
    if not feats:
        c = model.head.in_features + 1
        k = model.head.out_features // 4
        empty = torch.zeros(0, dtype=torch.float64, device=device)
        return empty.reshape(0, c), empty.reshape(0, k, 2), empty.reshape(0, k)
    return torch.cat(feats), torch.cat(joints), torch.cat(weights)


def _summed(tensors: tuple[torch.Tensor, ...], info) -> tuple[torch.Tensor, ...]:
    if info.distributed:
        for t in tensors:
            torch.distributed.all_reduce(t)
    return tensors


def weighted_ridge(feats: torch.Tensor, joints: torch.Tensor, weights: torch.Tensor, ridge: float,
                   info) -> tuple[torch.Tensor, torch.Tensor]:
    """Per joint, argmin_B sum w ||[f, 1] B - y||^2 + ridge ||B without its bias row||^2,
    (K, C+1, 2), over the samples of every process; and each joint's summed weight (K,).
    A joint without weight gets zeros (the caller keeps its rows)."""
    gram = torch.einsum("nk,nc,nd->kcd", weights, feats, feats)
    cross = torch.einsum("nk,nc,nkj->kcj", weights, feats, joints)
    gram, cross = _summed((gram, cross), info)
    mass = gram[:, -1, -1]
    penalty = torch.full((gram.shape[-1],), float(ridge), dtype=gram.dtype, device=gram.device)
    penalty[-1] = 0.0  # the bias is not shrunk
    coef = torch.zeros_like(cross)
    fitted = mass > 0
    if fitted.any():
        coef[fitted] = torch.linalg.solve(gram[fitted] + torch.diag(penalty), cross[fitted])
    return coef, mass


def distances(feats: torch.Tensor, joints: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """Per sample and joint, how far [f, 1] ``coef`` lies from the target, (S, K)."""
    return torch.linalg.vector_norm(torch.einsum("nc,kcj->nkj", feats, coef) - joints, dim=-1)


def robust_ridge(feats: torch.Tensor, joints: torch.Tensor, weights: torch.Tensor, ridge: float, huber: float,
                 info) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`weighted_ridge`, then ``HUBER_ITERATIONS`` reweighted fits in which a sample
    farther than ``huber`` from the previous fit counts ``huber / distance`` of its weight
    (``huber=0``: the plain fit)."""
    coef, mass = weighted_ridge(feats, joints, weights, ridge, info)
    for _ in range(HUBER_ITERATIONS if huber > 0 else 0):
        shrink = (huber / distances(feats, joints, coef).clamp_min(1e-12)).clamp(max=1.0)
        coef, _ = weighted_ridge(feats, joints, weights * shrink, ridge, info)
    return coef, mass


def weighted_rms(feats, joints, weights, coef, info) -> float:
    sums = torch.stack([(weights * distances(feats, joints, coef) ** 2).sum(), weights.sum()])
    (sums,) = _summed((sums,), info)
    return float(torch.sqrt(sums[0] / sums[1].clamp_min(1e-12)))


def refit_pooled_head(model: nn.Module, dataset, codec, *, crops: int, ridge: float, huber: float, teacher: str,
                      seed: int, batch_size: int, workers: int, info) -> dict:
    """Refit ``model.head``'s coordinate rows (joint k's x and y are rows 4k and 4k+1) in
    place; returns what happened: crops read, joints fitted, the head's weighted RMS
    distance to the teacher before and after (crop fractions), seconds."""
    start = time.perf_counter()
    head: nn.Linear = model.head
    k = head.out_features // 4
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:crops]
    shard = order[info.rank::info.world_size].tolist()
    loader = DataLoader(Subset(dataset, shard), batch_size=batch_size, shuffle=False, num_workers=workers)
    # The forward passes run the deployed form (RepVGG's branches merged, BatchNorm folded):
    # the same features up to float rounding in 0.6 of the multi-branch network's time.
    deployed = reparameterize_model(model)
    decoder = None if teacher == "ground_truth" else copy.deepcopy(model.heatmap_decoder).eval()
    feats, joints, weights = readout_samples(deployed, decoder, loader, codec, dataset.source.layout.flip_index,
                                             teacher, info.device)
    rows = torch.arange(k, device=head.weight.device)[:, None] * 4 + torch.arange(2, device=head.weight.device)
    old = torch.cat([head.weight[rows].detach(), head.bias[rows].detach()[..., None]], -1)  # (K, 2, C+1)
    old = old.transpose(1, 2).double().to(feats.device)
    coef, mass = robust_ridge(feats, joints, weights, ridge, huber, info)
    fitted = mass > 0  # a joint never labelled in the crops keeps its trained rows
    new = torch.where(fitted[:, None, None], coef, old)
    with torch.no_grad():
        head.weight[rows] = new[:, :-1].transpose(1, 2).to(head.weight)
        head.bias[rows] = new[:, -1].to(head.bias)
    return {"crops": len(order), "joints_fitted": int(fitted.sum()),
            "rms_before": round(weighted_rms(feats, joints, weights, old, info), 5),
            "rms_after": round(weighted_rms(feats, joints, weights, new, info), 5),
            "seconds": round(time.perf_counter() - start, 1)}
