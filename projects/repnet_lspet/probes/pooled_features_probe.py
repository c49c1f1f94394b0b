"""How much of the pose can a linear layer read from a network's features, pooled or not?

Runs a checkpoint on augmented training crops of a config, takes the output of one
module (``--layer``, a dotted module path), and fits ridge regressions from (a) its global
average (what RepNet's Linear sees) and (b) the whole map flattened, to the normalised
joint coordinates; then scores them on validation crops. Errors are fractions of the
error of always predicting the training crops' mean pose (1.0 = the mean pose, lower is
better), for a few ridge strengths. Asserts nothing.

    python projects/repnet_lspet/probes/pooled_features_probe.py configs/repnet_a_lspet_128x96.yaml \\
        runs/repnet_a_lspet/last.pth --layer neck
    python projects/repnet_lspet/probes/pooled_features_probe.py configs/lpn_50_lspet_128x96.yaml \\
        src/slimpose/weights/lpn_50_lsp_128x96_int8.pth --layer layer4 --pooled-only
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def features_and_targets(model, layer, dataset, n: int, pooled_only: bool):
    grabbed = {}
    hook = layer.register_forward_hook(lambda module, inputs, output: grabbed.__setitem__("map", output))
    pooled, flat, targets = [], [], []
    with torch.no_grad():
        for start in range(0, n, 64):
            items = [dataset[i] for i in range(start, min(n, start + 64))]
            model(torch.stack([it["image"] for it in items]))
            pooled.append(grabbed["map"].mean((2, 3)))
            if not pooled_only:
                flat.append(grabbed["map"].flatten(1))
            targets.append(torch.stack([it["target"] for it in items]).flatten(1))
    hook.remove()
    return {"pooled": torch.cat(pooled).numpy(), **({} if pooled_only else {"flattened": torch.cat(flat).numpy()})}, \
        torch.cat(targets).numpy()


def ridge_scores(train_x, train_t, val_x, val_t, strengths=(10.0, 100.0, 1000.0)) -> list[tuple[float, float, float]]:
    mean_pose = train_t.mean(0)
    base_train = np.abs(mean_pose - train_t).mean()
    base_val = np.abs(mean_pose - val_t).mean()
    centre, scale = train_x.mean(0), train_x.std(0) + 1e-6
    a, av = (train_x - centre) / scale, (val_x - centre) / scale
    rows = []
    for lam in strengths:
        w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ (train_t - mean_pose))
        rows.append((lam, np.abs(a @ w + mean_pose - train_t).mean() / base_train,
                     np.abs(av @ w + mean_pose - val_t).mean() / base_val))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("checkpoint")
    ap.add_argument("--layer", required=True, help="dotted module path, e.g. neck or layer4")
    ap.add_argument("--train-crops", type=int, default=2048)
    ap.add_argument("--val-crops", type=int, default=512)
    ap.add_argument("--pooled-only", action="store_true", help="skip the flattened map (large for wide layers)")
    args = ap.parse_args()

    from slimpose.config import load_config
    from slimpose.data.dataset import build_dataset
    from slimpose.engine.checkpoint import load_model_weights
    from slimpose.engine.builders import build_codec_for, build_model_for, seed_everything

    cfg = load_config(args.config)
    seed_everything(0, False)
    codec = build_codec_for(cfg, "coordinate")  # normalised joints as targets, whatever the model's head
    model = build_model_for(cfg)
    load_model_weights(model, args.checkpoint)
    model.float().eval()
    layer = model.get_submodule(args.layer)
    train_f, train_t = features_and_targets(model, layer, build_dataset(cfg, "train", codec), args.train_crops, args.pooled_only)
    val_f, val_t = features_and_targets(model, layer, build_dataset(cfg, "val", codec), args.val_crops, args.pooled_only)
    for kind in train_f:
        for lam, train_err, val_err in ridge_scores(train_f[kind], train_t, val_f[kind], val_t):
            print(f"{args.layer} {kind:9s} ({train_f[kind].shape[1]} features) ridge {lam:6g}: "
                  f"train {train_err:.3f}, val {val_err:.3f} x the mean-pose error")


if __name__ == "__main__":
    main()
