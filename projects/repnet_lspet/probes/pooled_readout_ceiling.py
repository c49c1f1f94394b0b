"""How far can a pooled regression get from a heatmap model's own heatmaps?

RepNet's output is the mean over its fused map of a Linear applied at every position.
Trained towards dense targets (``model.head.dense_target``), the best such a
readout can do given what the features know is a statistic of the joint's posterior
over positions: its mean for the MSE forms, its per-axis median for ``half_plane`` with
``model.head.dense_norm=l1``. A heatmap model's normalised heatmap is such a
posterior, so reading a trained heatmap model's maps with those statistics, instead of
their maximum, estimates what a pooled readout of equally good features would score.

Evaluates a heatmap checkpoint (its stored config: data, flip test, metric) five times,
decoding each heatmap by the config's decoding (its maximum), and, with negative values
clipped to 0, raised to the power 1 or 2 and normalised to sum 1, by ``mean`` (the
expected position) and ``median`` (the per-axis median of the marginals, interpolated
within a pixel), and prints the main metric and PCK@0.1 of each. The square stands for
features that are surer of themselves than the heatmap loss made them: a heatmap's
height is not a calibrated probability.

    python projects/repnet_lspet/probes/pooled_readout_ceiling.py runs/lpn_50_budget_epyc/best.pth

Checkpoints of ``projects/repnet_lspet/probes/repnet_heatmap_backbone.py`` (RepNet-A's
backbone and fusion under a heatmap decoder) are read too, and so are RepNet checkpoints
trained with ``model.kwargs.auxiliary_heatmaps``: their training-only decoder's maps (the
teacher of ``model.head.teacher=auxiliary_heatmaps``) are read, after the pooled regression
itself is scored as the deployed network would be.

    python projects/repnet_lspet/probes/pooled_readout_ceiling.py runs/repnet_a_lspet_distilled/best.pth
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch.nn as nn


class DecoderHeatmaps(nn.Module):
    """A RepNet's training-only heatmap decoder, read as a heatmap model."""

    output_kind = "heatmap"

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.heatmap_decoder(self.net.fused_features(x))


def normalised(heatmaps: np.ndarray, power: float = 1.0) -> np.ndarray:
    mass = np.clip(heatmaps.astype(np.float64), 0, None) ** power
    return mass / np.maximum(mass.sum((2, 3), keepdims=True), 1e-12)


def mean_readout(heatmaps: np.ndarray, power: float = 1.0) -> np.ndarray:
    """Expected (x, y) in heatmap pixels (pixel i centred at i), (N, K, 2)."""
    p = normalised(heatmaps, power)
    h, w = p.shape[2:]
    return np.stack([(p.sum(2) * np.arange(w)).sum(-1), (p.sum(3) * np.arange(h)).sum(-1)], -1)


def marginal_median(marginal: np.ndarray) -> np.ndarray:
    """Where the cumulative mass of (N, K, L) marginals crosses 1/2, pixel i spanning
    [i - 1/2, i + 1/2] with its mass spread evenly."""
    cdf = np.cumsum(marginal, -1)
    i = np.minimum((cdf < 0.5).sum(-1), marginal.shape[-1] - 1)
    before = np.take_along_axis(cdf, i[..., None], -1)[..., 0] - np.take_along_axis(marginal, i[..., None], -1)[..., 0]
    inside = np.take_along_axis(marginal, i[..., None], -1)[..., 0]
    return i - 0.5 + np.clip((0.5 - before) / np.maximum(inside, 1e-12), 0, 1)


def median_readout(heatmaps: np.ndarray, power: float = 1.0) -> np.ndarray:
    p = normalised(heatmaps, power)
    return np.stack([marginal_median(p.sum(2)), marginal_median(p.sum(3))], -1)


READOUTS = {"mean": mean_readout, "median": median_readout}


def report(label: str, metrics: dict, metric: str, note: str = "") -> None:
    print(f"{label:>10}: {metric} {100 * metrics[metric]:.1f}  PCK@0.1 {100 * metrics.get('PCK@0.1', float('nan')):.1f}"
          f"{note}", flush=True)
POWERS = (1.0, 2.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    args = ap.parse_args()

    from slimpose.config import config_from_dict
    from slimpose.data.dataset import build_dataset
    from slimpose.engine.checkpoint import load_checkpoint, load_model_weights
    from slimpose.engine.distributed import init_distributed
    from slimpose.engine.evaluate import evaluate
    from slimpose.engine.builders import build_codec_for, build_model_for

    ckpt = load_checkpoint(args.checkpoint)
    if ckpt["config"]["model"]["name"] == "repnet_a_heatmap":  # a probes/repnet_heatmap_backbone.py run
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from repnet_heatmap_backbone import register

        register(init_std=0.0)  # the checkpoint's weights replace the init
    cfg = config_from_dict(ckpt["config"], source=f"{args.checkpoint} (stored config)")
    model = build_model_for(cfg)
    load_model_weights(model, ckpt)
    info = init_distributed()
    if model.output_kind != "heatmap":
        if getattr(model, "heatmap_decoder", None) is None:
            raise SystemExit(f"{args.checkpoint}: {cfg.model.name} outputs {model.output_kind} and has no "
                             f"training-only heatmap decoder to read")
        codec = build_codec_for(cfg, model.output_kind)
        dataset = build_dataset(cfg, "val", codec)
        m = evaluate(model, dataset, codec, flip=cfg.test.flip, batch_size=cfg.data.val_batch_size,
                     workers=0, info=info)
        report("pooled", m, dataset.source.main_metric, "  (the regression, as deployed)")
        model = DecoderHeatmaps(model)
    codec = build_codec_for(cfg, model.output_kind)
    dataset = build_dataset(cfg, "val", codec)
    plain_decode = codec.decode_batch
    metric = dataset.source.main_metric
    for name, power in [("argmax", 1.0)] + [(r, p) for p in POWERS for r in READOUTS]:
        if name == "argmax":
            codec.decode_batch = plain_decode
        else:
            readout = READOUTS[name]

            def decode(heatmaps, readout=readout, power=power):
                return readout(heatmaps, power) * np.array(codec.stride), plain_decode(heatmaps)[1]

            codec.decode_batch = decode
        m = evaluate(model, dataset, codec, flip=cfg.test.flip, batch_size=cfg.data.val_batch_size,
                     workers=0, info=info)
        report(cfg.test.decode if name == "argmax" else name + (f" of h^{power:g}" if power != 1 else ""), m, metric)


if __name__ == "__main__":
    main()
