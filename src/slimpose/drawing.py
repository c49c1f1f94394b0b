"""Drawing poses and picture grids with OpenCV only (torch-free: the deploy runtime uses it).

Colours follow the usual convention: the person's left side green, right side orange,
the middle (head, torso centre line) blue; joints as filled dots with a dark rim.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from slimpose.keypoints import KeypointLayout

LEFT_BGR = (0, 200, 0)
RIGHT_BGR = (0, 140, 255)
MIDDLE_BGR = (255, 150, 50)


def _side(name: str) -> str:
    if name.startswith("left") or name.startswith("l_"):
        return "left"
    if name.startswith("right") or name.startswith("r_"):
        return "right"
    return "middle"


def _color(side: str) -> tuple[int, int, int]:
    return {"left": LEFT_BGR, "right": RIGHT_BGR}.get(side, MIDDLE_BGR)


def draw_pose(image_bgr: np.ndarray, keypoints, scores_or_visible, layout: KeypointLayout, thr: float = 0.3,
              radius: int | None = None, thickness: int | None = None, copy: bool = True) -> np.ndarray:
    """Draw one person's skeleton and joints; joints with score/visibility <= ``thr`` are
    left out, and so is every limb touching one. Returns the drawn image (a copy unless
    ``copy=False``). Sizes scale with the image unless given."""
    img = image_bgr.copy() if copy else image_bgr
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    kpts = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    score = np.asarray(scores_or_visible, dtype=np.float64).reshape(-1)
    if len(kpts) != layout.num_keypoints or len(score) != layout.num_keypoints:
        raise ValueError(f"draw_pose: {len(kpts)} keypoints / {len(score)} scores for the {layout.num_keypoints} "
                         f"of layout {layout.name!r}")
    shown = (score > thr) & np.isfinite(kpts).all(axis=1)
    extent = max(img.shape[0], img.shape[1])
    radius = radius if radius is not None else max(2, int(round(extent / 110)))
    thickness = thickness if thickness is not None else max(1, int(round(extent / 170)))
    sh = 4
    pts = np.round(np.nan_to_num(kpts) * (1 << sh)).astype(np.int64)
    pts = np.clip(pts, -(1 << 28), 1 << 28)
    sides = [_side(n) for n in layout.names]
    for a, b in layout.skeleton:
        if shown[a] and shown[b]:
            side = sides[a] if sides[a] == sides[b] else "middle"
            cv2.line(img, (int(pts[a, 0]), int(pts[a, 1])), (int(pts[b, 0]), int(pts[b, 1])), _color(side),
                     thickness, cv2.LINE_AA, sh)
    for j in np.nonzero(shown)[0]:
        center = (int(pts[j, 0]), int(pts[j, 1]))
        cv2.circle(img, center, (radius + 1) << sh, (30, 30, 30), -1, cv2.LINE_AA, sh)
        cv2.circle(img, center, radius << sh, _color(sides[j]), -1, cv2.LINE_AA, sh)
    return img


def draw_box(image_bgr: np.ndarray, box_xywh, color=(255, 255, 255), label: str | None = None,
             thickness: int = 1) -> np.ndarray:
    """Draw an (x, y, w, h) box, optionally labelled, in place; returns the image."""
    x, y, w, h = (float(v) for v in box_xywh)
    p1, p2 = (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h)))
    cv2.rectangle(image_bgr, p1, p2, color, thickness, cv2.LINE_AA)
    if label:
        cv2.putText(image_bgr, label, (p1[0], max(12, p1[1] - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1,
                    cv2.LINE_AA)
    return image_bgr


def make_grid(images: Sequence[np.ndarray], cols: int = 4, pad: int = 2, background=(40, 40, 40)) -> np.ndarray:
    """Tile BGR images (any sizes; smaller ones are centred in their cell) into one picture."""
    if not len(images):
        raise ValueError("make_grid: no images")
    images = [cv2.cvtColor(im, cv2.COLOR_GRAY2BGR) if im.ndim == 2 else im for im in images]
    cols = max(1, min(int(cols), len(images)))
    rows = (len(images) + cols - 1) // cols
    cell_h = max(im.shape[0] for im in images)
    cell_w = max(im.shape[1] for im in images)
    grid = np.empty((rows * cell_h + (rows + 1) * pad, cols * cell_w + (cols + 1) * pad, 3), np.uint8)
    grid[:] = np.asarray(background, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        y = pad + r * (cell_h + pad) + (cell_h - im.shape[0]) // 2
        x = pad + c * (cell_w + pad) + (cell_w - im.shape[1]) // 2
        grid[y:y + im.shape[0], x:x + im.shape[1]] = im[..., :3]
    return grid
