"""Pictures of augmented training crops, to check that keypoints sit on the joints."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from slimpose.drawing import draw_pose, make_grid


def augmented_crops(cfg, split: str = "train", num: int = 16, seed: int = 0) -> list[np.ndarray]:
    """``num`` crops after the full pipeline of ``split`` (before normalisation), with the
    keypoints and skeleton drawn (joints whose flag is 0 are not drawn)."""
    from slimpose.data.dataset import build_dataset

    dataset = build_dataset(cfg, split, codec=None, normalize=False)
    dataset.seed = int(seed)
    rng = np.random.default_rng(seed)
    n = len(dataset)
    picks = rng.choice(n, size=min(num, n), replace=False) if n > num else np.arange(n)
    layout = dataset.source.layout
    crops = []
    for i in picks:
        results = dataset.prepare(int(i))
        crop, kpts = results["image"], np.asarray(results["keypoints"], dtype=np.float64)
        if crop.shape[0] < 256:  # small inputs: enlarge so the skeleton stays readable
            f = 256 / crop.shape[0]
            crop = cv2.resize(crop, (int(round(crop.shape[1] * f)), 256), interpolation=cv2.INTER_LINEAR)
            kpts = (kpts + 0.5) * f - 0.5  # pixel centres of the enlarged picture
        crop = draw_pose(crop, kpts, results["visible"], layout, thr=0.5)
        label = f"#{int(i)}" + (" flip" if results.get("flipped") else "") + f" r{results.get('rotation', 0.0):.0f}"
        cv2.putText(crop, label, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        crops.append(crop)
    return crops


def show(cfg, split: str = "train", num: int = 16, out: str | Path = "data_show.png", seed: int = 0,
         cols: int | None = None) -> Path:
    crops = augmented_crops(cfg, split, num, seed)
    grid = make_grid(crops, cols or int(np.ceil(np.sqrt(len(crops)))))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), grid):
        raise OSError(f"cannot write {out}")
    return out
