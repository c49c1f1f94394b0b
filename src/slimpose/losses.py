"""Training losses: heatmap MSE with target weights, and RLE for coordinate models."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from slimpose.config import DECOMPOSED_NORMS, DECOMPOSED_TARGET_FORMS, DECOMPOSED_TEACHERS


class KeypointMSELoss(nn.Module):
    """Mean squared error between heatmaps, averaged over joints (HRNet's JointsMSELoss).

    ``target_weight`` zeroes unlabelled joints; optional per-joint ``joint_weights``
    (the layout's) scale the weight further. The 0.5 factor keeps HRNet's loss scale.
    """

    def __init__(self, use_target_weight: bool = True, joint_weights: torch.Tensor | None = None):
        super().__init__()
        self.use_target_weight = use_target_weight
        self.register_buffer("joint_weights", joint_weights if joint_weights is not None else torch.ones(0), persistent=False)

    def forward(self, output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
        n, k = output.shape[:2]
        diff = (output.reshape(n, k, -1) - target.reshape(n, k, -1)) ** 2
        weight = target_weight.reshape(n, k, 1) if self.use_target_weight else torch.ones_like(diff[..., :1])
        if self.joint_weights.numel():
            weight = weight * self.joint_weights.reshape(1, k, 1)
        return 0.5 * (diff * weight).mean()


# ----------------------------------------------------------------------------------
# RLE: residual log-likelihood estimation (Li et al., ICCV 2021), as used by RepNet.


def _rle_scale_net(hidden: int = 64) -> nn.Sequential:
    return nn.Sequential(nn.Linear(2, hidden), nn.LeakyReLU(), nn.Linear(hidden, hidden), nn.LeakyReLU(),
                         nn.Linear(hidden, 2), nn.Tanh())


def _rle_translation_net(hidden: int = 64) -> nn.Sequential:
    return nn.Sequential(nn.Linear(2, hidden), nn.LeakyReLU(), nn.Linear(hidden, hidden), nn.LeakyReLU(),
                         nn.Linear(hidden, 2))


class RealNVP(nn.Module):
    """RealNVP density on R^2 (Dinh et al.), the flow G of RLE.

    ``num_layers`` affine coupling layers with alternating masks [0, 1], [1, 0], ...; each
    has a scale net s (Linear(2,64)-LeakyReLU-Linear(64,64)-LeakyReLU-Linear(64,2), tanh)
    and a translation net t (the same without tanh). Prior N(0, I). Weights are initialised
    as in the official RLE code (Xavier-uniform, gain 0.01), so the flow starts close to the
    identity and G close to the standard normal density.
    """

    def __init__(self, num_layers: int = 6, hidden: int = 64):
        super().__init__()
        if num_layers % 2:
            raise ValueError("RealNVP needs an even number of coupling layers (alternating masks)")
        masks = torch.tensor([[0.0, 1.0], [1.0, 0.0]] * (num_layers // 2))
        self.register_buffer("mask", masks)
        self.s = nn.ModuleList([_rle_scale_net(hidden) for _ in range(num_layers)])
        self.t = nn.ModuleList([_rle_translation_net(hidden) for _ in range(num_layers)])
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, gain=0.01)
                nn.init.zeros_(m.bias)

    def backward_p(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map data x (M, 2) to the latent z; also return log|det dz/dx| (M,)."""
        log_det = x.new_zeros(x.shape[0])
        z = x
        for i in reversed(range(len(self.t))):
            mask = self.mask[i]
            z_ = mask * z
            s = self.s[i](z_) * (1 - mask)
            t = self.t[i](z_) * (1 - mask)
            z = (1 - mask) * (z - t) * torch.exp(-s) + z_
            log_det = log_det - s.sum(dim=1)
        return z, log_det

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log G(x) for x of shape (M, 2): the prior's log density at z plus the log-Jacobian."""
        z, log_det = self.backward_p(x)
        log_prior = -0.5 * (z**2).sum(dim=1) - math.log(2 * math.pi)
        return log_prior + log_det


class RLELoss(nn.Module):
    """Residual log-likelihood estimation loss for coordinate models.

    ``pred`` is the model output (N, K, 4): normalised coordinates mu (0:2) and sigma
    (2:4, already through the model's sigmoid); ``target`` (N, K, 2) normalised
    coordinates; ``target_weight`` (N, K) (or (N, K, 1)). With x_bar = (gt - mu) / sigma
    the loss of one joint is the negative log-likelihood of paper Eq. (13) (RLE paper
    Eq. 10; RepNet paper Eq. 13):

        sum_{x,y} [log sigma + log 2 + |x_bar|]  -  log G(x_bar)      (q_dis="laplace")
        sum_{x,y} [log sigma + log sqrt(2 pi) + x_bar^2 / 2] - log G(x_bar)  (q_dis="gaussian")
        sum_{x,y} log sigma  -  log G(x_bar)                               (residual=False)

    G is the RealNVP density of the 2-D x_bar, evaluated once per joint. The result is
    weighted by ``target_weight`` and, with ``size_average``, divided by N (MMPose:
    ``loss /= len(loss)`` then ``sum``).

    Choice of Q term (SPEC "known pitfall"): the official RLE code uses
    log(sigma * sqrt(2 pi)) + |e| / (sqrt(2) sigma), a Laplace exponent with a Gaussian
    normaliser, which is not the paper's Q. We use the paper's Laplace Q, the same Q
    term as MMPose's RLELoss (log(2 sigma) + |x_bar|). Note that both code bases also add
    an ``nf_loss = log sigma - log G`` term whose log G is broadcast over x and y, so their
    sum counts log sigma and log G twice; we keep the single count of the paper's
    likelihood (a proper NLL, whose optimal sigma is the mean absolute error, e.g.
    sigma -> b for Laplace noise of scale b). The sign of x_bar follows the paper
    (gt - mu); MMPose uses (mu - gt), which only mirrors the learnt G.

    ``flow``: the model's own RealNVP (RepNet keeps it as ``model.flow``), so that it is
    optimised, checkpointed and identical across DDP ranks with the model; without one
    the loss makes its own (for use outside the trainer).
    """

    def __init__(self, use_target_weight: bool = True, size_average: bool = True, residual: bool = True,
                 q_dis: str = "laplace", flow: RealNVP | None = None):
        super().__init__()
        if q_dis not in ("laplace", "gaussian"):
            raise ValueError(f"q_dis must be 'laplace' or 'gaussian', got {q_dis!r}")
        self.use_target_weight = use_target_weight
        self.size_average = size_average
        self.residual = residual
        self.q_dis = q_dis
        self.flow_model = flow if flow is not None else RealNVP()

    def forward(self, pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor | None = None) -> torch.Tensor:
        n, k = target.shape[:2]
        mu = pred[..., :2]
        sigma = pred[..., 2:4].clamp_min(1e-9)
        x_bar = (target - mu) / sigma
        log_g = self.flow_model.log_prob(x_bar.reshape(-1, 2)).reshape(n, k)
        per_coord = torch.log(sigma)
        if self.residual:
            if self.q_dis == "laplace":
                per_coord = per_coord + math.log(2.0) + x_bar.abs()
            else:
                per_coord = per_coord + 0.5 * math.log(2 * math.pi) + 0.5 * x_bar**2
        loss = per_coord.sum(dim=-1) - log_g  # (N, K)
        if self.use_target_weight:
            if target_weight is None:
                raise ValueError("RLELoss(use_target_weight=True) needs target_weight")
            loss = loss * target_weight.reshape(n, k).to(loss.dtype)
        loss = loss.sum()
        return loss / n if self.size_average else loss


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


class DecomposedRegressionLoss(nn.Module):
    """A pooled-regression loss plus a dense form of it, for models whose output is the
    mean of a Linear applied at every position of a feature map (RepNet).

    The global average of a translation-equivariant map does not move when the map
    moves, so such a model's gradient says only "raise this channel everywhere in this
    image", and from random weights it stays at the mean pose. The dense term asks the
    per-position coordinates (``model.position_outputs``, (N, H, W, K, >=2), which the
    model's training forward keeps once ``model.keep_position_outputs`` is set, as this
    loss does) to equal a field whose mean over the grid is the joint, so that each
    position gets its own gradient. ``form`` picks the field:

    - ``"gaussian"``: :func:`decomposed_coordinate_targets`, the joint's offset from the
      crop centre on the cells around the joint (local; the best measured);
    - ``"displacement"``: :func:`displacement_coordinate_targets`, every cell's
      displacement to the joint;
    - ``"half_plane"``: :func:`half_plane_coordinate_targets`, the fraction of each cell
      on one side of the joint.

    ``norm`` is ``"mse"`` or ``"l1"``, summed over x and y, averaged over the grid,
    weighted by ``target_weight``, divided by N, times ``weight``, added to ``base`` (RLE).
    Where the features leave the joint uncertain, MSE makes each position's output the
    mean of its target over the joint's possible places, and so the pooled output the
    joint's expected position. The half-plane fractions are monotone in the joint's
    coordinate, so under L1 the pooled output becomes the per-axis median instead.

    ``teacher`` says where the field puts the joint: ``"ground_truth"`` (the label) or
    ``"auxiliary_heatmaps"``, the highest cell of the model's own training-only heatmaps
    (``model.auxiliary_heatmaps``, not differentiated through). Given the image the label
    is uncertain, so the readout learns its expected position; the heatmaps' maximum is a
    function of the image that the readout can match, and where a heatmap model's
    accuracy lies (a heatmap's expected position scores less than half as well).
    The deployed model is unchanged.
    """

    def __init__(self, base: nn.Module, model: nn.Module, weight: float, sigma: float = 1.0,
                 form: str = "gaussian", norm: str = "mse", teacher: str = "ground_truth"):
        super().__init__()
        if form not in DECOMPOSED_TARGET_FORMS:
            raise ValueError(f"form must be one of {DECOMPOSED_TARGET_FORMS}, got {form!r}")
        if norm not in DECOMPOSED_NORMS:
            raise ValueError(f"norm must be one of {DECOMPOSED_NORMS}, got {norm!r}")
        if teacher not in DECOMPOSED_TEACHERS:
            raise ValueError(f"teacher must be one of {DECOMPOSED_TEACHERS}, got {teacher!r}")
        self.base = base
        self._model = [model]  # a reference, not a submodule: the model's weights stay the model's
        self.weight, self.sigma, self.form, self.norm = float(weight), float(sigma), form, norm
        self.teacher = teacher
        model.keep_position_outputs = True

    def _joints(self, target: torch.Tensor) -> torch.Tensor:
        if self.teacher == "ground_truth":
            return target
        heatmaps = self._model[0].auxiliary_heatmaps
        if heatmaps is None:
            raise RuntimeError("DecomposedRegressionLoss: teacher 'auxiliary_heatmaps' but the model kept no heatmaps")
        return heatmap_argmax_joints(heatmaps.detach().float())

    def forward(self, pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
        loss = self.base(pred, target, target_weight)
        model = self._model[0]
        dense, model.position_outputs = model.position_outputs, None  # consumed: no graph is kept alive
        if dense is None:
            raise RuntimeError("DecomposedRegressionLoss: the model kept no position_outputs (not in training mode?)")
        n, h, w, k = dense.shape[:4]
        joints = self._joints(target)
        if self.form == "gaussian":
            goal = decomposed_coordinate_targets(joints, h, w, self.sigma)
        elif self.form == "displacement":
            goal = displacement_coordinate_targets(joints, h, w)
        else:
            goal = half_plane_coordinate_targets(joints, h, w)
        diff = dense[..., :2].permute(0, 3, 1, 2, 4).float() - goal
        err = (diff.abs() if self.norm == "l1" else diff**2).mean((2, 3)).sum(-1)  # (N, K)
        return loss + self.weight * (err * target_weight.reshape(n, k)).sum() / n


class AuxiliaryHeatmapLoss(nn.Module):
    """``base`` plus ``weight`` x the heatmap MSE (:class:`KeypointMSELoss`) of a model's
    training-only heatmaps (``model.auxiliary_heatmaps``, (N, K, H, W)) against unit-peak
    Gaussians of ``sigma`` cells at the normalised joints.

    ``base`` runs first, so a :class:`DecomposedRegressionLoss` inside it can read the same
    heatmaps as its teacher; this loss then releases them.
    """

    def __init__(self, base: nn.Module, model: nn.Module, weight: float, sigma: float = 2.0):
        super().__init__()
        self.base = base
        self._model = [model]  # a reference, not a submodule: the model's weights stay the model's
        self.weight, self.sigma = float(weight), float(sigma)
        self.mse = KeypointMSELoss(use_target_weight=True)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
        loss = self.base(pred, target, target_weight)
        model = self._model[0]
        heatmaps, model.auxiliary_heatmaps = model.auxiliary_heatmaps, None
        if heatmaps is None:
            raise RuntimeError("AuxiliaryHeatmapLoss: the model kept no auxiliary_heatmaps (not in training mode?)")
        goal = grid_gaussians(target, heatmaps.shape[2], heatmaps.shape[3], self.sigma)
        return loss + self.weight * self.mse(heatmaps.float(), goal, target_weight)
