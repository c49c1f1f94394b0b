"""Grids of targets over a feature map, in normalised crop coordinates: Gaussians at the
joints, the dense coordinate fields of the pooled-RLE head, and a heatmap's highest cell."""

from __future__ import annotations

import torch


def cell_centres(height: int, width: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised x (``width``) and y (``height``) of a grid's cell centres, on ``like``'s
    device and dtype."""
    xs = (torch.arange(width, device=like.device, dtype=like.dtype) + 0.5) / width
    ys = (torch.arange(height, device=like.device, dtype=like.dtype) + 0.5) / height
    return xs, ys


def grid_gaussians(target: torch.Tensor, height: int, width: int, sigma: float = 1.0) -> torch.Tensor:
    """Unit-peak Gaussians of ``sigma`` cells at normalised joints ``target`` (N, K, 2) on
    the centres of a ``height`` x ``width`` grid: (N, K, H, W)."""
    n, k = target.shape[:2]
    xs, ys = cell_centres(height, width, target)
    dx = (xs.view(1, 1, 1, width) - target[..., 0].view(n, k, 1, 1)) * width
    dy = (ys.view(1, 1, height, 1) - target[..., 1].view(n, k, 1, 1)) * height
    return torch.exp(-(dx**2 + dy**2) / (2 * sigma**2))


def decomposed_coordinate_targets(target: torch.Tensor, height: int, width: int, sigma: float = 1.0) -> torch.Tensor:
    """Per-position coordinates whose mean over an ``height`` x ``width`` grid is ``target``.

    ``target`` (N, K, 2) holds normalised joints; the result (N, K, H, W, 2) is
    ``0.5 + H W g (target - 0.5)``, g a Gaussian of ``sigma`` cells around the joint
    normalised to sum 1 over the grid: the joint's offset from the crop centre sits on
    the cells around the joint, and the rest of the map holds the centre.
    """
    n, k = target.shape[:2]
    g = grid_gaussians(target, height, width, sigma)
    g = g / g.sum((2, 3), keepdim=True).clamp_min(1e-6)
    return 0.5 + height * width * g.unsqueeze(-1) * (target.view(n, k, 1, 1, 2) - 0.5)


def displacement_coordinate_targets(target: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-position coordinates whose mean over an ``height`` x ``width`` grid is ``target``:
    ``0.5 + target - c``, c each cell's normalised centre, (N, K, H, W, 2).

    Every cell holds its displacement to the joint. Unlike the joint's absolute position,
    a displacement field moves with the image, so a convolutional network can produce it
    without knowing where in the crop a cell lies; the cell centres average to 0.5, so the
    field averages to the joint.
    """
    n, k = target.shape[:2]
    xs, ys = cell_centres(height, width, target)
    centres = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1)  # (H, W, 2) as x, y
    return 0.5 + target.view(n, k, 1, 1, 2) - centres


def half_plane_coordinate_targets(target: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-position coordinates whose mean over an ``height`` x ``width`` grid is ``target``:
    for x, the fraction of each cell that lies left of the joint (1 left of it, 0 right of
    it, in between in its column); for y, the fraction above it. (N, K, H, W, 2).

    The columns' fractions add up to the joint's x in columns, so the mean is the joint for
    any joint inside the crop. Each cell only has to tell on which side of it the joint
    lies, a bounded field that moves with the image.
    """
    n, k = target.shape[:2]
    cols = torch.arange(width, device=target.device, dtype=target.dtype)
    rows = torch.arange(height, device=target.device, dtype=target.dtype)
    fx = (target[..., 0].view(n, k, 1) * width - cols).clamp(0, 1)  # (N, K, W)
    fy = (target[..., 1].view(n, k, 1) * height - rows).clamp(0, 1)  # (N, K, H)
    return torch.stack([fx.unsqueeze(2).expand(n, k, height, width),
                        fy.unsqueeze(3).expand(n, k, height, width)], dim=-1)


def heatmap_argmax_joints(heatmaps: torch.Tensor) -> torch.Tensor:
    """Normalised (x, y) of the centre of each heatmap's highest cell: (N, K, H, W) → (N, K, 2)."""
    n, k, h, w = heatmaps.shape
    idx = heatmaps.reshape(n, k, h * w).argmax(-1)
    xs, ys = cell_centres(h, w, heatmaps)
    return torch.stack([xs[idx % w], ys[idx // w]], dim=-1)
