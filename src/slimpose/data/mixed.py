"""Training on several data sets with different keypoint layouts (``data.train_mix``).

Each source is read in its own layout and its instances are mapped into the target layout
(``data.layout``) by joint name: the source's ``x`` lands in the target's ``x`` channel,
and a target joint the source lacks gets keypoint (0, 0) and visibility 0, so its target
weight is 0 and it adds neither loss nor gradient (MMPose's CombinedDataset does the same).
The registered layouts name their shared joints alike (LSP's and MPII's twelve limb joints
are COCO's ``left_knee``, ``right_wrist``, ...), so no table of aliases is needed. The
sources are concatenated into one :class:`MixedSource`, whose :class:`MixPart` s give each
one's index range, and :class:`RatioSampler` draws each source's share of an epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.data import Sampler

from slimpose.data.base import DataSource
from slimpose.data.layouts import mix_source_layout
from slimpose.data.sources import build_source
from slimpose.data.types import PersonInstance
from slimpose.keypoints import KeypointLayout


def joint_map(source: KeypointLayout, target: KeypointLayout) -> np.ndarray:
    """(K_target,) int: the source index of each target joint by name, -1 where it has none."""
    return np.array([source.names.index(n) if n in source.names else -1 for n in target.names], dtype=np.int64)


def remap_instance(inst: PersonInstance, index: np.ndarray) -> PersonInstance:
    """``inst`` with its joints in the target layout of ``index`` (:func:`joint_map`);
    per-joint extras of the source layout (LSP's visible_flag) are left out."""
    has = index >= 0
    keypoints = np.zeros((len(index), 2), dtype=np.float32)
    visible = np.zeros(len(index), dtype=np.float32)
    keypoints[has] = inst.keypoints[index[has]]
    visible[has] = inst.visible[index[has]]
    k = len(inst.visible)
    extra = {key: v for key, v in inst.extra.items() if not (isinstance(v, np.ndarray) and v.shape[:1] == (k,))}
    return replace(inst, keypoints=keypoints, visible=visible, extra=extra)


@dataclass(frozen=True)
class MixPart:
    """One source of a :class:`MixedSource`: instances ``start:stop``."""

    label: str  # its config section, e.g. data.train_mix[0]
    summary: str  # the source's own summary (instances, skipped)
    layout: str  # the layout it was read in
    start: int
    stop: int
    ratio: float
    lacks: tuple[str, ...]  # target joints it has no name for (target weight 0)
    unused: tuple[str, ...]  # its joints the target has no name for

    def report(self, target: KeypointLayout) -> str:
        """One line: which of the target's joints the source supplies and which it lacks."""
        k = target.num_keypoints
        line = (f"{self.label} ({self.layout} layout, {self.stop - self.start} instances, ratio {self.ratio:g}): "
                f"supplies {k - len(self.lacks)} of the {k} {target.name} joints")
        line += f"; lacks {', '.join(self.lacks)} (weight 0)" if self.lacks else ""
        return line + (f"; not used: {', '.join(self.unused)}" if self.unused else "")


class MixedSource(DataSource):
    """The training sources of a config, concatenated in the target layout (module docstring)."""

    def __init__(self, layout: KeypointLayout):
        super().__init__(name="mixed", layout=layout)
        self.parts: list[MixPart] = []

    def add(self, label: str, source: DataSource, ratio: float) -> None:
        index = joint_map(source.layout, self.layout)
        instances = source.instances if source.layout == self.layout else [
            remap_instance(inst, index) for inst in source.instances]
        start = len(self.instances)
        self.instances.extend(instances)
        for reason, n in source.skipped.items():
            self._skip(reason, n)
        self.parts.append(MixPart(
            label=label, summary=source.summary(), layout=source.layout.name, start=start, stop=len(self.instances),
            ratio=float(ratio), lacks=tuple(n for n, i in zip(self.layout.names, index) if i < 0),
            unused=tuple(n for n in source.layout.names if n not in self.layout.names)))

    def summary(self) -> str:
        return "; ".join(part.summary for part in self.parts)


def build_mixed_source(data, layout: KeypointLayout, input_size) -> MixedSource:
    """``data.train`` (read in ``layout``) and each ``data.train_mix`` source (read in its
    own layout, mapped by joint name) as one :class:`MixedSource`."""
    mixed = MixedSource(layout)
    mixed.add("data.train", build_source(data.train, layout, input_size, train=True), data.train_ratio)
    for i, ds in enumerate(data.train_mix):
        where = f"data.train_mix[{i}]"
        source = build_source(ds, mix_source_layout(ds, layout, where), input_size, train=True)
        mixed.add(where, source, ds.ratio)
    return mixed


def ratio_counts(total: int, ratios) -> list[int]:
    """``total`` draws split in proportion to ``ratios`` (largest remainder: they add up)."""
    ratios = np.asarray(ratios, dtype=np.float64)
    exact = total * ratios / ratios.sum()
    counts = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - counts), kind="stable")[:total - int(counts.sum())]:
        counts[i] += 1
    return counts.tolist()


class RatioSampler(Sampler[int]):
    """An epoch of a :class:`MixedSource`'s indices: as many draws as it has instances, each
    part its share by ratio, a part's instances drawn without repeats until all were used
    (then a fresh permutation), all shuffled together. Deterministic per ``seed`` and epoch
    (:meth:`set_epoch`); sharded by ``rank`` as ``DistributedSampler(drop_last=True)`` does:
    every process the same order, each taking every ``num_replicas``-th index."""

    def __init__(self, parts: list[MixPart], num_replicas: int = 1, rank: int = 0, seed: int = 0):
        self.parts, self.num_replicas, self.rank, self.seed = list(parts), int(num_replicas), int(rank), int(seed)
        self.epoch = 0
        self.total = sum(p.stop - p.start for p in self.parts)
        self.counts = ratio_counts(self.total, [p.ratio for p in self.parts])
        self.per_replica = self.total // self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.per_replica

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        picks = []
        for part, n in zip(self.parts, self.counts):
            size = part.stop - part.start
            rounds = [torch.randperm(size, generator=g) for _ in range(math.ceil(n / size))]
            picks.append(torch.cat(rounds)[:n] + part.start if rounds else torch.zeros(0, dtype=torch.int64))
        order = torch.cat(picks)
        order = order[torch.randperm(len(order), generator=g)][:self.per_replica * self.num_replicas]
        return iter(order[self.rank::self.num_replicas].tolist())
