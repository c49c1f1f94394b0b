"""The torch Dataset of top-down crops: source instance → image → pipeline → target."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from slimpose.data.base import DataSource, read_image
from slimpose.data.layouts import resolve_layout
from slimpose.data.mixed import build_mixed_source
from slimpose.data.sources import build_source
from slimpose.data.transforms import Compose, NormalizeImage, build_pipeline
from slimpose.models.registry import get_model_entry


class TopdownDataset(Dataset):
    """One item per person instance of ``source``.

    ``codec`` is anything with ``encode(keypoints (K, 2) crop px, visible (K,)) ->
    (target, target_weight)``. Augmentation draws from a Generator seeded with
    (seed, epoch, index), so an item is the same in any worker, order or rerun;
    call :meth:`set_epoch` each epoch to get fresh augmentations.
    """

    def __init__(self, source: DataSource, pipeline: Compose, codec, train: bool, seed: int = 0,
                 input_size: tuple[int, int] | None = None):
        self.source, self.pipeline, self.codec = source, pipeline, codec
        self.train, self.seed, self.epoch = train, int(seed), 0
        if input_size is None:
            input_size = next((t.input_size for t in pipeline.transforms if hasattr(t, "input_size")), None)
        self.input_size = tuple(input_size) if input_size is not None else None

    @property
    def layout(self):
        return self.source.layout

    def __len__(self) -> int:
        return len(self.source.instances)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def rng_for(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch if self.train else 0, int(index)])

    def prepare(self, index: int) -> dict:
        """The pipeline's ``results`` dict for an item (no target encoding)."""
        inst = self.source.instances[index]
        results = {
            "image": read_image(inst.image_path),
            "center": np.array(inst.center, dtype=np.float64),
            "scale": np.array(inst.scale, dtype=np.float64),
            "rotation": 0.0,
            "keypoints": np.array(inst.keypoints, dtype=np.float64),
            "visible": np.array(inst.visible, dtype=np.float32),
            "flipped": False,
        }
        return self.pipeline(results, self.rng_for(index))

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        results = self.prepare(index)
        target, target_weight = self.codec.encode(results["keypoints"], results["visible"])
        return {
            "image": torch.from_numpy(np.ascontiguousarray(results["image"])),
            "target": torch.as_tensor(np.asarray(target, dtype=np.float32)),
            "target_weight": torch.as_tensor(np.asarray(target_weight, dtype=np.float32).reshape(-1)),
            "index": index,
            "center": torch.as_tensor(np.asarray(results["center"], dtype=np.float32)),
            "scale": torch.as_tensor(np.asarray(results["scale"], dtype=np.float32)),
            "rotation": float(results.get("rotation", 0.0)),
        }


def build_dataset(cfg, split: str, codec, normalize: bool = True, augment: bool | None = None) -> TopdownDataset:
    """Source + pipeline + dataset for ``split`` ("train" | "val") of an ExperimentConfig.

    ``augment`` defaults to augmenting the train split only; ``augment=False`` gives the
    train split's instances cropped as a test crop is (the head refit reads them so).
    With ``data.train_mix`` the train split's source is a
    :class:`~slimpose.data.mixed.MixedSource` of all the training sets.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    ds = getattr(cfg.data, split)
    train = split == "train"
    augment = train if augment is None else augment
    layout = resolve_layout(cfg)
    input_size = tuple(cfg.data.input_size)
    if train and cfg.data.train_mix:
        source = build_mixed_source(cfg.data, layout, input_size)
    else:
        source = build_source(ds, layout, input_size, train=train)
    info = get_model_entry(cfg.model.name).info
    pipeline = build_pipeline(cfg.data.augment, layout, input_size, train=augment, normalize=normalize,
                              normalization=NormalizeImage(info.mean, info.std, info.color_order == "RGB"))
    return TopdownDataset(source, pipeline, codec, train=augment, seed=cfg.train.seed, input_size=input_size)
