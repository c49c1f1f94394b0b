"""Builders: the model, its head, codec, optimiser and learning-rate schedule from a config,
and what a checkpoint records about them. Shared by training, evaluation and export."""

from __future__ import annotations

import math
import random

import numpy as np
import torch
import torch.nn as nn

from slimpose import __version__
from slimpose.codecs import build_codec
from slimpose.config import ExperimentConfig, TrainConfig
from slimpose.errors import ConfigError
from slimpose.heads import Head, build_head
from slimpose.data.layouts import resolve_layout
from slimpose.models import build_model, get_model_entry


def learning_rate(tc: TrainConfig, epoch: float, stage: int, iters_done_in_stage: int) -> float:
    """The lr at a (fractional) epoch. Stateless, so a resumed run continues exactly.

    In LPN's iterative schedule every stage after the first restarts at
    ``restart_epoch`` with the base lr and decays at the milestones after it.
    """
    start = tc.restart_epoch if stage > 0 else 0
    if tc.schedule == "multistep":
        lr = tc.lr * tc.gamma ** sum(1 for m in tc.milestones if start < m <= epoch)
    elif tc.schedule == "cosine":
        progress = (epoch - start) / max(tc.epochs - start, 1)
        lr = tc.min_lr + 0.5 * (tc.lr - tc.min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))
    else:
        raise ConfigError(f"train.schedule: unknown schedule {tc.schedule!r} (multistep or cosine)")
    if iters_done_in_stage < tc.warmup_iters:
        ramp = iters_done_in_stage / tc.warmup_iters
        lr *= tc.warmup_factor + (1 - tc.warmup_factor) * ramp
    return lr


FUSED_OPTIMIZER_DEVICES = ("cpu", "cuda")


def build_optimizer(tc: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Adam or AdamW over ``model``'s parameters; with ``train.fused_optimizer``, PyTorch's
    fused kernel where the parameters' device has one: the same update in one pass per tensor
    instead of a dozen elementwise ops. At one CPU thread RepNet-A's step (8.6M
    training-time parameters) falls from 39 to 11 ms, a tenth of a batch-8 iteration
    (benchmarks/optimizer_step.py)."""
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    if tc.optimizer not in kinds:
        raise ConfigError(f"train.optimizer: unknown optimizer {tc.optimizer!r} (adam or adamw)")
    params = list(model.parameters())
    fused = tc.fused_optimizer and all(p.device.type in FUSED_OPTIMIZER_DEVICES for p in params)
    return kinds[tc.optimizer](params, lr=tc.lr, weight_decay=tc.weight_decay, fused=fused)


def build_head_for(cfg: ExperimentConfig) -> Head:
    """The model's training head (its registry entry names it) with ``model.head``'s options."""
    kind = get_model_entry(cfg.model.name).info.head
    return build_head(kind, cfg.model.head, cfg.data.heatmap_sigma)


def build_codec_for(cfg: ExperimentConfig, output_kind: str):
    return build_codec(output_kind, tuple(cfg.data.input_size), sigma=cfg.data.heatmap_sigma,
                       decode=cfg.test.decode, beta=cfg.test.beta)


def build_model_for(cfg: ExperimentConfig, head_kwargs: dict | None = None) -> nn.Module:
    """The config's model, checked to give outputs its codec can read at ``data.input_size``;
    ``head_kwargs``: what the training head asks the model for (``Head.model_kwargs``)."""
    layout = resolve_layout(cfg)
    size = tuple(cfg.data.input_size)
    model = build_model(cfg.model.name, num_joints=layout.num_keypoints, input_size=size,
                        **{**cfg.model.kwargs, **(head_kwargs or {})})
    # Some backbones round odd feature-map sizes up, so at some input sizes the heatmaps are
    # not input/4 and every decoded joint would be silently misplaced.
    was_training = model.training
    with torch.no_grad():
        shape = tuple(model.eval()(torch.zeros(1, 3, *size)).shape)
    model.train(was_training)
    problem = build_codec_for(cfg, model.output_kind).output_shape_problem(shape, layout.num_keypoints)
    if problem:
        raise ConfigError(f"data.input_size: {cfg.model.name} at {size[0]}x{size[1]}: {problem}; choose an input "
                          "size whose sides are multiples of 32 (e.g. 256x192, 128x96)")
    return model


def checkpoint_meta(cfg: ExperimentConfig, output_kind: str) -> dict:
    """What a checkpoint needs to be used without its config (export, inference)."""
    return {
        "model_name": cfg.model.name,
        "model_kwargs": dict(cfg.model.kwargs),
        "output_kind": output_kind,
        "input_size": list(cfg.data.input_size),
        "layout": resolve_layout(cfg).to_dict(),
        "heatmap_sigma": cfg.data.heatmap_sigma,
        "decode": cfg.test.decode,
        "beta": cfg.test.beta,
        "slimpose_version": __version__,
    }


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
