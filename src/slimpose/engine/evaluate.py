"""Prediction over a data set (with flip test), decoding to image coordinates, scoring."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from slimpose.codecs import KeypointCodec, predict_keypoints
from slimpose.engine.distributed import DistInfo, all_gather_objects, broadcast_object
from slimpose.errors import TrainingDiverged


def numpy_forward(model: nn.Module, device: torch.device, amp: bool = False):
    """``model`` as the numpy-in, numpy-out forward that :func:`predict_keypoints` runs."""
    def forward(x: np.ndarray) -> np.ndarray:
        with torch.no_grad(), torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            return model(torch.from_numpy(x).to(device, non_blocking=True)).float().cpu().numpy()
    return forward


def predict(
    model: nn.Module,
    loader: DataLoader,
    codec: KeypointCodec,
    flip_index: list[int] | None,
    device: torch.device,
    amp: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keypoints (N, K, 2) in image pixels, scores (N, K) and the instance indices (N,).

    ``flip_index`` turns on the flip test: the mirrored crop's prediction is mirrored
    back (pairs swapped) and averaged with the plain one before decoding. The same path
    as the deploy runtime (:func:`slimpose.codecs.predict_keypoints`).
    """
    model.eval()
    forward = numpy_forward(model, device, amp)
    keypoints, scores, indices = [], [], []
    for batch in loader:
        kpts, kpt_scores = predict_keypoints(forward, batch["image"].numpy(), codec, batch["center"].numpy(),
                                             batch["scale"].numpy(), flip_index, batch["rotation"].numpy())
        keypoints.append(kpts)
        scores.append(kpt_scores)
        indices.append(batch["index"].numpy())
    if not indices:
        k = getattr(model, "num_joints", 0)
        return np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32), np.zeros(0, np.int64)
    return np.concatenate(keypoints), np.concatenate(scores), np.concatenate(indices)


def make_eval_loader(dataset, batch_size: int, workers: int, info: DistInfo) -> DataLoader:
    sampler = DistributedSampler(dataset, info.world_size, info.rank, shuffle=False) if info.distributed else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, sampler=sampler, num_workers=workers,
                      pin_memory=info.device.type == "cuda", persistent_workers=False)


def evaluate(
    model: nn.Module,
    dataset,
    codec,
    *,
    flip: bool,
    batch_size: int,
    workers: int,
    info: DistInfo,
    out_dir: Path | None = None,
    amp: bool = False,
) -> dict[str, float]:
    """Score a model on a data set; every rank predicts its shard, rank 0 scores.

    All ranks return the same metrics dict. ``out_dir`` receives the predictions
    (``results_keypoints.json`` for COCO-style data).
    """
    start = time.perf_counter()
    flip_index = dataset.source.layout.flip_index if flip else None
    loader = make_eval_loader(dataset, batch_size, workers, info)
    kpts, scores, idx = predict(model, loader, codec, flip_index, info.device, amp)
    gathered = all_gather_objects((kpts, scores, idx), info)
    outcome = None
    if info.is_main:
        kpts = np.concatenate([g[0] for g in gathered])
        scores = np.concatenate([g[1] for g in gathered])
        idx = np.concatenate([g[2] for g in gathered])
        # DistributedSampler pads shards by repeating items; keep each instance once.
        idx, first = np.unique(idx, return_index=True)
        kpts, scores = kpts[first], scores[first]
        broken = int((~np.isfinite(kpts).all(axis=(1, 2)) | ~np.isfinite(scores).all(axis=1)).sum())
        if broken:
            outcome = (f"the model predicts non-finite keypoints for {broken} of {len(idx)} "
                       f"person{'' if len(idx) == 1 else 's'}: its weights diverged")
        else:
            if out_dir is not None:
                Path(out_dir).mkdir(parents=True, exist_ok=True)
            metrics = dataset.source.evaluate(kpts, scores, idx, out_dir=Path(out_dir) if out_dir else None)
            outcome = {k: float(v) for k, v in metrics.items()}
            outcome["eval_seconds"] = round(time.perf_counter() - start, 2)
    outcome = broadcast_object(outcome, info)  # every rank returns, or raises, alike
    if isinstance(outcome, str):
        raise TrainingDiverged(outcome)
    return outcome
