"""Data-pipeline throughput on one worker: samples/s of ``TopdownDataset.__getitem__``.

256x192 crops, the full training augmentation (flip, half body, random scale/rotation,
affine warp, normalisation) and heatmap target encoding (64x48, sigma 2), on
coco-mini train and on LSPET (first 500 instances). Also splits the time into image
decoding, augmentation + warp + normalisation, and target encoding. Prints figures;
asserts nothing.

    python benchmarks/data_throughput.py [--samples 500] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def _config(name: str, root: Path):
    from slimpose.config import DatasetConfig, ExperimentConfig

    cfg = ExperimentConfig()
    cfg.data.input_size = (256, 192)
    if name == "coco-mini":
        cfg.data.layout = "coco"
        cfg.data.train = DatasetConfig(type="coco", ann_file=str(root / "coco-mini/annotations/person_keypoints_train2017.json"),
                                       img_dir=str(root / "coco-mini/train2017"))
    else:
        cfg.data.layout = "lsp"
        cfg.data.train = DatasetConfig(type="lsp", ann_file=str(root / "lspet/joints.mat"), first=1, last=8000, limit=500)
    return cfg


def bench(name: str, root: Path, samples: int) -> None:
    from slimpose.codecs import build_codec
    from slimpose.data.dataset import build_dataset, read_image

    cfg = _config(name, root)
    codec = build_codec("heatmap", cfg.data.input_size, sigma=2.0)
    t0 = time.perf_counter()
    ds = build_dataset(cfg, "train", codec)
    build_s = time.perf_counter() - t0
    n = len(ds)
    for i in range(min(10, n)):  # warm-up (file cache, lazy imports)
        ds[i]
    order = np.arange(samples) % n
    t0 = time.perf_counter()
    for k, i in enumerate(order):
        if k and k % n == 0:
            ds.set_epoch(k // n)
        ds[int(i)]
    total = time.perf_counter() - t0
    # stage split on the same items
    t_read = t_pipe = t_enc = 0.0
    for i in order[: min(samples, 300)]:
        inst = ds.source.instances[int(i)]
        a = time.perf_counter()
        read_image(inst.image_path)
        b = time.perf_counter()
        results = ds.prepare(int(i))  # reads again + pipeline
        c = time.perf_counter()
        codec.encode(results["keypoints"], results["visible"])
        d = time.perf_counter()
        t_read += b - a
        t_pipe += (c - b) - (b - a)
        t_enc += d - c
    m = min(samples, 300)
    print(f"{name}: {n} instances (source built in {build_s:.2f} s), {samples} samples in {total:.2f} s "
          f"→ {samples / total:.0f} samples/s on one worker")
    print(f"    per sample: read+decode {1e3 * t_read / m:.2f} ms, augment+warp+normalise {1e3 * t_pipe / m:.2f} ms, "
          f"heatmap encode {1e3 * t_enc / m:.2f} ms")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    args = p.parse_args()
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    root = Path(args.data)
    for name, sub in (("coco-mini", "coco-mini"), ("lspet", "lspet")):
        if not (root / sub).is_dir():
            print(f"{name}: {root / sub} not found, skipped")
            continue
        bench(name, root, args.samples)


if __name__ == "__main__":
    main()
