"""Knowledge distillation for heatmap models: a trained teacher's heatmaps join the labels'.

The teacher sees each augmented training batch at its own input size. Crops are made so
that a box's centre lands on the crop's centre ``(W / 2, H / 2)`` (:mod:`slimpose.geometry`)
and heatmap pixel ``j`` stands for input pixel ``j * stride`` (:mod:`slimpose.codecs.heatmap`),
so the same crop at two sizes, and the heatmaps made from them, differ by a scale about the
origin: :func:`resample_from_origin` maps one onto the other exactly (a plain bilinear resize
would shift every joint by a fraction of a pixel)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from slimpose.engine.checkpoint import load_checkpoint, model_from_checkpoint
from slimpose.errors import ConfigError
from slimpose.weights import resolve_checkpoint


def resample_from_origin(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resample of ``maps`` (N, C, H, W) to ``size`` (h, w) where output pixel
    ``(y, x)`` reads input pixel ``(y * H / h, x * W / w)``."""
    (in_h, in_w), (out_h, out_w) = maps.shape[-2:], size
    ys = torch.arange(out_h, dtype=torch.float32, device=maps.device) * (in_h / out_h)
    xs = torch.arange(out_w, dtype=torch.float32, device=maps.device) * (in_w / out_w)
    # grid_sample with align_corners=True: -1 and +1 are the centres of the first and last pixel
    gy = ys / max(in_h - 1, 1) * 2 - 1
    gx = xs / max(in_w - 1, 1) * 2 - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)
    grid = grid.unsqueeze(0).expand(maps.shape[0], -1, -1, -1).to(maps.dtype)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=True)


def mirror_heatmaps_back(maps: torch.Tensor, flip_index: list[int], input_width: int) -> torch.Tensor:
    """Heatmaps (N, K, h, w) predicted on mirrored crops of ``input_width`` pixels, brought
    back to the unmirrored crops: joints swapped by ``flip_index``, columns reversed and
    moved by the exact sub-pixel offset. Input pixel ``x`` mirrors to ``W - 1 - x``, which
    is heatmap column ``(W - 1) / s - j`` for stride ``s = W / w``: ``(s - 1) / s`` of a
    column right of the plain reversal ``w - 1 - j`` (HRNet's shift rounds it to one)."""
    reversed_maps = maps[:, flip_index].flip(-1)
    stride = input_width / maps.shape[-1]
    offset = (stride - 1) / stride
    left_neighbour = torch.cat([reversed_maps[..., :1], reversed_maps[..., :-1]], dim=-1)
    return (1 - offset) * reversed_maps + offset * left_neighbour


class HeatmapTeacher:
    """A trained heatmap model (``train.distill_from``: a shipped weight's name or a
    checkpoint) whose heatmaps take ``weight`` of each training target; with ``flip_index``
    (``train.distill_flip``) they average the crop's and its mirror's, as the flip test."""

    def __init__(self, name_or_path: str, joint_names: tuple[str, ...], weight: float, device: torch.device,
                 flip_index: list[int] | None = None):
        path = resolve_checkpoint(name_or_path)
        state = load_checkpoint(path)
        self.model = model_from_checkpoint(state, str(path))
        if self.model.output_kind != "heatmap":
            raise ConfigError(f"train.distill_from: {name_or_path} is a {self.model.output_kind} model; "
                              "a teacher must give heatmaps")
        teacher_names = tuple(state["meta"]["layout"]["names"])
        if teacher_names != tuple(joint_names):
            raise ConfigError(f"train.distill_from: {name_or_path} predicts {', '.join(teacher_names)}; "
                              f"the student's joints are {', '.join(joint_names)}")
        self.model = self.model.to(device).eval().requires_grad_(False)
        self.input_size = tuple(self.model.input_size)
        self.weight = weight
        self.source = name_or_path
        self.flip_index = list(flip_index) if flip_index is not None else None

    @torch.no_grad()
    def heatmaps(self, images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The teacher's heatmaps for student ``images``, at heatmap ``size``."""
        crops = resample_from_origin(images.float(), self.input_size)
        maps = self.model(crops).float()
        if self.flip_index is not None:
            mirrored = self.model(crops.flip(-1)).float()
            maps = (maps + mirror_heatmaps_back(mirrored, self.flip_index, self.input_size[1])) / 2
        return resample_from_origin(maps, size)

    def blend(self, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (1 - self.weight) * target + self.weight * self.heatmaps(images, tuple(target.shape[-2:]))
