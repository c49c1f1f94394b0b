"""Synthetic COCO-format keypoint data: rendered articulated figures with the 17 COCO joints.

Each image holds one to three figures over a cluttered background. A figure is a
kinematic stick body: torso polygon, head with eyes, ears and nose, limbs as thick
rounded segments. Pose (joint angles), lean, head turn, width, scale, in-plane rotation
and colours vary.

Left and right: every figure faces the camera (its face is drawn), so its left side is
on the image right in the figure's own frame, as for a real person seen from the front.
One side of the body (shoulder, hip, arm, leg) is drawn in a light tone and the other in
a dark tone of the figure's colour, so each limb can be traced to its shoulder or hip;
WHICH side is light is random per figure. A fixed "left = light" code would be
contradicted by flip augmentation and the flip test (mirroring with pair swap labels
the light limbs "right"), while the facing rule survives the mirror exactly as it does
for real people.

Visibility flags are honest: a joint covered by a later figure or by an occluding
rectangle is ``v=1`` (labelled, occluded), one in sight is ``v=2``, and one outside the
image is ``v=0`` with zero coordinates. Boxes and areas come from the figure's rendered
mask (clipped to the image). The same seed gives the same bytes: every image draws from
its own Generator seeded by (seed, split, index), JPEGs are written at a fixed quality
and the JSON with a fixed layout.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from slimpose.keypoints import COCO17

JPEG_QUALITY = 90
_SPLIT_CODE = {"train": 1, "val": 2}

# Segment proportions in units of the figure size `s` (roughly head-top-to-ankle height).
_TORSO, _SHOULDER_W, _HIP_W = 0.30, 0.22, 0.15
_NECK_HEAD, _HEAD_R = 0.115, 0.062
_UPPER_ARM, _FOREARM, _THIGH, _SHIN = 0.17, 0.155, 0.235, 0.225
# Limb thickness (fraction of s).
_W_TORSO_EDGE, _W_UPPER_ARM, _W_FOREARM, _W_THIGH, _W_SHIN = 0.02, 0.055, 0.045, 0.075, 0.06


def _rot(v: np.ndarray, deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _pose(rng: np.random.Generator, size: float, center: np.ndarray, angle: float) -> dict:
    """Joint positions (17, 2) in image pixels plus drawing geometry of one figure."""
    jitter = lambda: rng.uniform(0.9, 1.1)  # noqa: E731
    up = _rot(np.array([0.0, -1.0]), angle + rng.normal(0, 8))  # torso lean on top of the figure angle
    perp = _rot(up, 90.0)  # toward the figure's LEFT (image right for a figure facing the camera)
    squash = rng.uniform(0.75, 1.1)  # horizontal body width (slight turn away from frontal)
    hip_c = np.zeros(2)
    neck = hip_c + up * _TORSO * size * jitter()
    k = np.zeros((17, 2))
    k[5] = neck + perp * 0.5 * _SHOULDER_W * size * squash * jitter()  # left shoulder
    k[6] = neck - perp * 0.5 * _SHOULDER_W * size * squash * jitter()
    k[11] = hip_c + perp * 0.5 * _HIP_W * size * squash * jitter()  # left hip
    k[12] = hip_c - perp * 0.5 * _HIP_W * size * squash * jitter()
    # head: tilt, turn (yaw moves the face sideways), fixed proportions
    head_up = _rot(up, rng.normal(0, 10))
    head_perp = _rot(head_up, 90.0)
    head_c = neck + head_up * _NECK_HEAD * size
    r = _HEAD_R * size
    yaw = rng.uniform(-0.35, 0.35)
    k[0] = head_c - head_up * 0.25 * r + head_perp * yaw * r  # nose
    k[1] = head_c + head_up * 0.2 * r + head_perp * (0.38 + yaw) * r  # left eye
    k[2] = head_c + head_up * 0.2 * r + head_perp * (-0.38 + yaw) * r
    k[3] = head_c + head_perp * (0.95 - 0.25 * max(yaw, 0)) * r  # left ear
    k[4] = head_c - head_perp * (0.95 + 0.25 * min(yaw, 0)) * r
    down = -up
    # limbs: the angle from hanging straight down, positive = outward (away from the body)
    for side, (sh, el, wr, hp, kn, an) in ((1, (5, 7, 9, 11, 13, 15)), (-1, (6, 8, 10, 12, 14, 16))):
        a_sh = rng.uniform(-25, 170)
        d = _rot(down, -side * a_sh)
        k[el] = k[sh] + d * _UPPER_ARM * size * jitter()
        d = _rot(d, -side * rng.uniform(-150, 60))
        k[wr] = k[el] + d * _FOREARM * size * jitter()
        a_hp = rng.uniform(-15, 65) if rng.random() < 0.8 else rng.uniform(-15, 110)
        d = _rot(down, -side * a_hp)
        k[kn] = k[hp] + d * _THIGH * size * jitter()
        d = _rot(d, -side * rng.uniform(-80, 80))
        k[an] = k[kn] + d * _SHIN * size * jitter()
    # place the figure: its joint-box centre on `center`
    lo, hi = k.min(axis=0), k.max(axis=0)
    shift = center - 0.5 * (lo + hi)
    return {"keypoints": k + shift, "head_center": head_c + shift, "head_radius": r, "size": size,
            "head_up": head_up}


def _shade(color: np.ndarray, amount: float) -> tuple[int, int, int]:
    """amount > 0 blends toward white, < 0 toward black."""
    c = color.astype(np.float64)
    c = c + (255.0 - c) * amount if amount > 0 else c * (1.0 + amount)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def _draw_figure(canvas: np.ndarray, mask: np.ndarray | None, fig: dict, colors: dict) -> None:
    """Draw on ``canvas`` (BGR) with the figure's colours, and with 255 on ``mask``."""
    k = fig["keypoints"]
    s = fig["size"]
    sh = 4  # fixed-point bits for sub-pixel drawing
    P = lambda p: (int(round(p[0] * (1 << sh))), int(round(p[1] * (1 << sh))))  # noqa: E731

    def targets():
        yield canvas, None
        if mask is not None:
            yield mask, 255

    def seg(a, b, width, color):
        t = max(1, int(round(width * s)))
        for img, fixed in targets():
            cv2.line(img, P(k[a]), P(k[b]), fixed if fixed is not None else color, t, cv2.LINE_AA, sh)

    torso = np.array([k[5], k[6], k[12], k[11]])
    for img, fixed in targets():
        cv2.fillConvexPoly(img, np.round(torso * (1 << sh)).astype(np.int32),
                           fixed if fixed is not None else colors["torso"], cv2.LINE_AA, sh)
        cv2.polylines(img, [np.round(torso * (1 << sh)).astype(np.int32)], True,
                      fixed if fixed is not None else colors["outline"],
                      max(1, int(round(_W_TORSO_EDGE * s))), cv2.LINE_AA, sh)
    # legs then arms; left (light) and right (dark) tones
    for side in ("right", "left"):
        hp, kn, an = (11, 13, 15) if side == "left" else (12, 14, 16)
        seg(hp, kn, _W_THIGH, colors[side])
        seg(kn, an, _W_SHIN, colors[side + "_2"])
    for side in ("right", "left"):
        sh_, el, wr = (5, 7, 9) if side == "left" else (6, 8, 10)
        seg(sh_, el, _W_UPPER_ARM, colors[side])
        seg(el, wr, _W_FOREARM, colors[side + "_2"])
    # hands and feet: round caps in the limb tone, a joint dot in the other tone
    for j, side in ((9, "left"), (10, "right"), (15, "left"), (16, "right")):
        rad = max(1, int(round(0.035 * s)))
        for img, fixed in targets():
            cv2.circle(img, P(k[j]), rad << sh, fixed if fixed is not None else colors[side], -1, cv2.LINE_AA, sh)
    for j in (5, 6, 11, 12, 7, 8, 13, 14):
        side = "left" if j % 2 == 1 else "right"
        rad = 0.03 if j in (5, 6, 11, 12) else 0.018
        cv2.circle(canvas, P(k[j]), max(1, int(round(rad * s))) << sh, colors[side + "_joint"], -1, cv2.LINE_AA, sh)
    # neck and head
    neck = 0.5 * (k[5] + k[6])
    t = max(1, int(round(0.05 * s)))
    hc, r = fig["head_center"], fig["head_radius"]
    for img, fixed in targets():
        cv2.line(img, P(neck), P(hc), fixed if fixed is not None else colors["skin"], t, cv2.LINE_AA, sh)
        cv2.circle(img, P(hc), int(round(r * (1 << sh))), fixed if fixed is not None else colors["skin"], -1,
                   cv2.LINE_AA, sh)
    er = max(1, int(round(0.22 * r)))
    for j, side in ((3, "left"), (4, "right")):
        cv2.circle(canvas, P(k[j]), er << sh, colors[side], -1, cv2.LINE_AA, sh)
    for j in (1, 2):
        cv2.circle(canvas, P(k[j]), max(1, int(round(0.16 * r))) << sh, (20, 20, 20), -1, cv2.LINE_AA, sh)
    cv2.circle(canvas, P(k[0]), max(1, int(round(0.13 * r))) << sh, (40, 40, 200), -1, cv2.LINE_AA, sh)


def _figure_colors(rng: np.random.Generator) -> dict:
    hsv = np.array([[[rng.integers(0, 180), rng.integers(90, 256), rng.integers(90, 200)]]], np.uint8)
    base = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)
    skin = np.array([rng.uniform(60, 200), rng.uniform(110, 210), rng.uniform(150, 240)])
    light = {"": _shade(base, 0.6), "_2": _shade(base, 0.45), "_joint": _shade(base, 0.9)}
    dark = {"": _shade(base, -0.6), "_2": _shade(base, -0.45), "_joint": _shade(base, -0.85)}
    left, right = (light, dark) if rng.random() < 0.5 else (dark, light)
    colors = {"torso": _shade(base, 0.0), "outline": _shade(base, -0.5), "skin": tuple(int(v) for v in skin)}
    colors.update({"left" + k: v for k, v in left.items()})
    colors.update({"right" + k: v for k, v in right.items()})
    return colors


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, h if rng.random() < 0.5 else w, dtype=np.float32)
    ramp = c0[None, :] * (1 - t[:, None]) + c1[None, :] * t[:, None]
    img = np.empty((h, w, 3), np.float32)
    if len(t) == h:
        img[:] = ramp[:, None, :]
    else:
        img[:] = ramp[None, :, :]
    img = img.astype(np.uint8)
    for _ in range(int(rng.integers(4, 12))):
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = rng.integers(0, 4)
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if kind == 0:
            cv2.circle(img, (x, y), int(rng.integers(4, max(5, h // 5))), color, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(5, w // 3)), y + int(rng.integers(5, h // 3))), color, -1)
        elif kind == 2:
            cv2.line(img, (x, y), (int(rng.integers(0, w)), int(rng.integers(0, h))), color,
                     int(rng.integers(1, 4)), cv2.LINE_AA)
        else:
            axes = (int(rng.integers(4, w // 4)), int(rng.integers(3, h // 6)))
            cv2.ellipse(img, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, color, -1, cv2.LINE_AA)
    return img


def render_image(rng: np.random.Generator, width: int, height: int,
                 debug: dict | None = None) -> tuple[np.ndarray, list[dict]]:
    """One synthetic picture and its person annotations (keypoints, bbox, area).

    ``debug``, when given, receives per figure its mask (``masks``) and the mask of what
    covers it (``covered``: later figures and occluders), for checking the flags."""
    image = _background(rng, width, height)
    n = int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))
    figures, masks = [], []
    slots = rng.permutation(n)
    for i in range(n):
        size = height * (rng.uniform(0.55, 0.95) if n == 1 else rng.uniform(0.4, 0.75))
        cx = (slots[i] + 0.5) / n * width + rng.normal(0, 0.08 * width)
        cy = height * 0.5 + rng.normal(0, 0.08 * height)
        angle = float(np.clip(rng.normal(0, 18), -50, 50))
        fig = _pose(rng, size, np.array([cx, cy]), angle)
        mask = np.zeros((height, width), np.uint8)
        _draw_figure(image, mask, fig, _figure_colors(rng))
        figures.append(fig)
        masks.append(mask)
    occluder = np.zeros((height, width), np.uint8)
    for _ in range(int(rng.choice([0, 1, 2], p=[0.45, 0.4, 0.15]))):
        fig = figures[int(rng.integers(0, n))]
        c = fig["keypoints"][int(rng.integers(0, 17))] + rng.normal(0, 0.05 * fig["size"], 2)
        half = np.array([rng.uniform(0.06, 0.16), rng.uniform(0.06, 0.16)]) * fig["size"]
        p1 = tuple(int(v) for v in np.round(c - half))
        p2 = tuple(int(v) for v in np.round(c + half))
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.rectangle(image, p1, p2, color, -1)
        cv2.rectangle(image, p1, p2, tuple(int(v) // 2 for v in color), 2)
        cv2.rectangle(occluder, p1, p2, 255, -1)
    noise = rng.uniform(0, 8)
    if noise > 1:
        image = np.clip(image.astype(np.float32) + rng.normal(0, noise, image.shape).astype(np.float32),
                        0, 255).astype(np.uint8)
    if rng.random() < 0.2:
        image = cv2.GaussianBlur(image, (3, 3), 0)
    anns = []
    for i, (fig, mask) in enumerate(zip(figures, masks)):
        covered = occluder.copy()
        for later in masks[i + 1:]:
            covered |= later
        kpts = []
        for x, y in fig["keypoints"]:
            xi, yi = int(round(x)), int(round(y))
            if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
                kpts += [0, 0, 0]
            else:
                kpts += [round(float(x), 2), round(float(y), 2), 1 if covered[yi, xi] else 2]
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            continue
        x1, y1, x2, y2 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
        if debug is not None:
            debug.setdefault("masks", []).append(mask)
            debug.setdefault("covered", []).append(covered)
        anns.append({"keypoints": kpts, "num_keypoints": int(sum(1 for v in kpts[2::3] if v > 0)),
                     "bbox": [x1, y1, x2 - x1, y2 - y1], "area": int(len(xs))})
    return image, anns


def _categories() -> list[dict]:
    return [{"supercategory": "person", "id": 1, "name": "person", "keypoints": list(COCO17.names),
             "skeleton": [[a + 1, b + 1] for a, b in COCO17.skeleton]}]


def generate_split(out_dir: Path, split: str, num_images: int, seed: int, image_size=(320, 256)) -> tuple[Path, Path]:
    width, height = int(image_size[0]), int(image_size[1])
    img_dir = Path(out_dir) / split
    img_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(num_images):
        rng = np.random.default_rng([int(seed), _SPLIT_CODE[split], i])
        image, anns = render_image(rng, width, height)
        name = f"{i + 1:06d}.jpg"
        if not cv2.imwrite(str(img_dir / name), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            raise OSError(f"cannot write {img_dir / name}")
        images.append({"id": i + 1, "file_name": name, "width": width, "height": height})
        for ann in anns:
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                                **ann})
    ann_dir = Path(out_dir) / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    ann_file = ann_dir / f"person_keypoints_{split}.json"
    data = {"info": {"description": "slimpose synthetic figures", "seed": int(seed), "split": split},
            "images": images, "annotations": annotations, "categories": _categories()}
    ann_file.write_text(json.dumps(data, separators=(",", ":")))
    return ann_file, img_dir


def generate_synthetic_coco(out_dir, num_train: int = 1000, num_val: int = 200, seed: int = 0,
                            image_size=(320, 256)) -> dict:
    """Write ``out_dir/{train,val}/*.jpg`` and ``out_dir/annotations/person_keypoints_{train,val}.json``.

    ``image_size`` is (W, H). Returns the paths: ``root``, ``train_ann``, ``train_images``,
    ``val_ann``, ``val_images`` (``train_img_dir``/``val_img_dir`` are the same folders).
    """
    out_dir = Path(out_dir)
    train_ann, train_dir = generate_split(out_dir, "train", num_train, seed, image_size)
    val_ann, val_dir = generate_split(out_dir, "val", num_val, seed, image_size)
    return {"root": out_dir, "train_ann": train_ann, "train_images": train_dir, "train_img_dir": train_dir,
            "val_ann": val_ann, "val_images": val_dir, "val_img_dir": val_dir}
