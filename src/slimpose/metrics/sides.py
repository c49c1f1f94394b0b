"""Left/right-mirrored labels: which limbs of which people a model's predictions match far
better with the labels' left and right exchanged than as they are.

Annotators label a person facing the camera with the image's left as the person's left
often enough to matter (a share of LSP-extended's people; see projects/lspet_sides). A
trained model that is mostly right about sides then points at those labels. The test is
per limb, because legs and arms are mirrored separately (crossed legs, a person turning).
"""

from __future__ import annotations

import re

import numpy as np

from slimpose.keypoints import KeypointLayout
from slimpose.metrics.pck import own_and_partner_hits

ALL_PAIRS = "left/right pairs"
_SIDE_WORD = re.compile(r"(?i)(^|[_\s-])(left|right)(?=$|[_\s-])")


def _reachable(edges: list[tuple[int, int]], start: int) -> list[int]:
    """Joints reachable from ``start`` over ``edges``, in breadth-first order."""
    order, i = [start], 0
    while i < len(order):
        u = order[i]
        order += [w for a, b in edges for s, w in ((a, b), (b, a)) if s == u and w not in order]
        i += 1
    return list(dict.fromkeys(order))


def _stem(name: str) -> str:
    """A joint name without its side word: ``left_knee`` -> ``knee``."""
    return _SIDE_WORD.sub("", name).strip("_- ") or name


def limb_groups(layout: KeypointLayout) -> dict[str, tuple[int, ...]]:
    """The layout's limbs, each as the joints of both its sides, named from the torso
    outwards (LSP, COCO: ``hip-knee-ankle`` and ``shoulder-elbow-wrist``).

    A limb is a chain of left/right-paired joints that the skeleton hangs off the rest of
    the body by edges lying on no cycle (the torso's edges close cycles; an arm's do not).
    A layout with pairs but no such chain (no skeleton) is one group of all its pairs.
    """
    flip = layout.flip_index
    side = {a for a, _ in layout.flip_pairs}
    edges = [tuple(e) for e in layout.skeleton]
    limb_edges = [(u, v) for u, v in edges if u in side and v in side
                  and v not in _reachable([e for e in edges if e != (u, v)], u)]
    torso_edges = [e for e in edges if e not in limb_edges]
    groups: dict[str, tuple[int, ...]] = {}
    for joint in sorted({j for e in limb_edges for j in e}):
        if any(joint in g for g in groups.values()):
            continue
        chain = _reachable(limb_edges, joint)
        # named from the joint that the torso holds outwards
        root = next((j for j in chain if any(j in e for e in torso_edges)), chain[0])
        chain = _reachable(limb_edges, root)
        name = "-".join(_stem(layout.names[j]) for j in chain)
        groups[name] = tuple(sorted(chain + [flip[j] for j in chain]))
    if not groups and layout.flip_pairs:
        groups[ALL_PAIRS] = tuple(sorted(j for pair in layout.flip_pairs for j in pair))
    return groups


def mirrored_limbs(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, layout: KeypointLayout,
                   norm: np.ndarray, thr: float = 0.2, margin: int = 2, min_hits: int = 3
                   ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For each limb of :func:`limb_groups`, which people (N,) look mirrored, with their
    hits as labelled and mirrored (N,) each.

    ``pred``, ``gt`` (N, K, 2), labelled joints ``mask`` (N, K), PCK normalisers ``norm``
    (N,). A limb looks mirrored when at least ``min_hits`` of its joints, labelled on both
    sides, are within ``thr`` normalisers of their left/right partner's label, ``margin``
    more than are within reach of their own.
    """
    as_labelled, mirrored, _ = own_and_partner_hits(pred, gt, mask, layout.flip_index, thr, norm)
    out = {}
    for name, joints in limb_groups(layout).items():
        own, swapped = as_labelled[:, joints].sum(1), mirrored[:, joints].sum(1)
        out[name] = ((swapped >= own + margin) & (swapped >= min_hits), own, swapped)
    return out
