"""Does a coordinate model leave the mean pose? A probe on fixed training crops.

Draws CROPS augmented training crops of a config once, then trains the model on batches
of them for STEPS AdamW steps and prints, every sixth of the run, the error of the
predicted coordinates on those crops (and on 128 validation crops) as a fraction of the
error of always predicting the crops' mean pose, with the spread of the predictions
across crops, the mean sigma and the mean |weight| of the final Linear. 1.0 = the mean
pose; a model that learns goes below it. A coarse screen: the mean absolute error is
dominated by gross misses (a wrist put on the other side), so a model can gain PCK while
still near 1.0 here; a training run's val PCK is the measure. Asserts nothing.

Variants, joined with "+": base (the config as written: RLE, the head's N(0, 0.01)
init), definit (PyTorch's default init of the final Linear), gauss (RLE with a Gaussian
instead of a Laplace residual), l1 / l2 (plain L1 / L2 on the coordinates instead of
RLE), bn (a BatchNorm on the pooled features, which would fold into the Linear),
lrX (AdamW lr X, default 1e-3), sgd (SGD with momentum 0.9 and 50x that lr instead of
AdamW), smallinit (the backbone's and fusion's convs drawn from N(0, 0.001), as LPN and
HRNet initialise theirs), aux (beside the regression loss, a training-only 1x1 conv on the
fused stride-16 map trained towards Gaussian heatmaps of the joints), flat (a diagnostic
outside the paper's design: the Linear reads the whole fused map flattened instead of
its global average).

    python projects/repnet_lspet/probes/repnet_probe.py base 240 1024 [--config configs/repnet_a_lspet_128x96.yaml]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn


def fixed_batch(dataset, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    items = [dataset[i] for i in range(min(n, len(dataset)))]
    return tuple(torch.stack([it[key] for it in items]) for key in ("image", "target", "target_weight"))


def relative_error(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, baseline: float) -> float:
    err = (pred[..., :2] - target).abs().sum(-1)
    return float((err * weight).sum() / weight.sum()) / baseline


def aux_heatmap_loss(heatmaps: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """MSE towards unit-peak Gaussians (sigma one cell) at the joints, on the map's grid."""
    from slimpose.heads.fields import grid_gaussians

    goal = grid_gaussians(target, *heatmaps.shape[2:])
    return 100 * (((heatmaps - goal) ** 2).mean((2, 3)) * weight).mean()


@torch.no_grad()
def centre_head_bias(head: nn.Linear) -> None:
    """RepNet's start: coordinates at the crop centre, sigma 0.5 (raw 0 before the sigmoid)."""
    head.bias.view(-1, 4)[:, :2] = 0.5
    head.bias.view(-1, 4)[:, 2:] = 0.0


def build_variant(variant: set[str], cfg):
    from slimpose.engine.builders import build_model_for
    from slimpose.heads.rle import RLELoss

    model = build_model_for(cfg)
    if "definit" in variant:
        model.head.reset_parameters()
        centre_head_bias(model.head)
    if "smallinit" in variant:
        from slimpose.models.layers import init_weights_normal

        init_weights_normal(model.backbone, std=0.001)
        init_weights_normal(model.neck, std=0.001)
    if "flat" in variant:
        h, w = (s // 16 for s in cfg.data.input_size)
        model.pool = nn.Flatten()
        model.head = nn.Linear(model.head.in_features * h * w, model.head.out_features)
        with torch.no_grad():
            model.head.weight.normal_(std=0.01 / (h * w) ** 0.5)
        centre_head_bias(model.head)
    if "bn" in variant:
        model.pool = nn.Sequential(model.pool, nn.BatchNorm2d(model.head.in_features))
    rle = RLELoss(flow=model.flow.module)
    if "gauss" in variant:
        rle.q_dis = "gaussian"

    fused = {}
    if "aux" in variant:
        model.aux = nn.Conv2d(model.head.in_features, model.k, 1)
        model.neck.register_forward_hook(lambda m, i, o: fused.__setitem__("map", o))

    def regression_loss(out, target, weight):
        if "l1" in variant or "l2" in variant:
            diff = (out[..., :2] - target).abs() if "l1" in variant else (out[..., :2] - target) ** 2
            return (diff.sum(-1) * weight).sum() / len(out)
        return rle(out, target, weight)

    def loss(out, target, weight):
        value = regression_loss(out, target, weight)
        if "aux" in variant:
            value = value + aux_heatmap_loss(model.aux(fused["map"]), target, weight)
        return value

    return model, loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variant")
    ap.add_argument("steps", type=int)
    ap.add_argument("crops", type=int)
    ap.add_argument("--config", default="configs/repnet_a_lspet_128x96.yaml")
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()

    from slimpose.config import load_config
    from slimpose.data.dataset import build_dataset
    from slimpose.engine.builders import build_codec_for, seed_everything

    variant = set(args.variant.split("+"))
    lr = next((float(v[2:]) for v in variant if v.startswith("lr")), 1e-3)
    cfg = load_config(args.config)
    seed_everything(0, False)
    codec = build_codec_for(cfg, "coordinate")
    x, t, w = fixed_batch(build_dataset(cfg, "train", codec), args.crops)
    vx, vt, vw = fixed_batch(build_dataset(cfg, "val", codec), 128)
    mean_pose = (t * w[..., None]).sum(0) / w.sum(0).clamp_min(1)[:, None]
    base_train = relative_error(mean_pose.expand_as(t), t, w, 1.0)
    base_val = relative_error(mean_pose.expand_as(vt), vt, vw, 1.0)
    model, loss_fn = build_variant(variant, cfg)
    if "sgd" in variant:
        opt = torch.optim.SGD(model.parameters(), lr=50 * lr, momentum=0.9, weight_decay=1e-4)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    print(f"{args.variant}: mean-pose error {base_train:.4f} (train crops), {base_val:.4f} (val crops)")
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        idx = torch.randint(0, len(x), (args.batch,), generator=g)
        model.train()
        loss = loss_fn(model(x[idx]), t[idx], w[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % max(1, args.steps // 6) == 0 or step == args.steps:
            model.eval()
            with torch.no_grad():
                pred = torch.cat([model(x[i:i + 64]) for i in range(0, len(x), 64)])
                vpred = model(vx)
            print(f"step {step:5d} loss {loss.item():7.3f} train {relative_error(pred, t, w, base_train):.3f} "
                  f"val {relative_error(vpred, vt, vw, base_val):.3f} spread {pred[..., :2].std(0).mean():.4f} "
                  f"sigma {pred[..., 2:].mean():.3f} |head w| {model.head.weight.abs().mean():.4f} "
                  f"{time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
