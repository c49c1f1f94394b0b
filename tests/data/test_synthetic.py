"""The synthetic COCO-format generator: determinism, format, honest visibility flags."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
from pycocotools.coco import COCO

from slimpose.data.synthetic import generate_synthetic_coco, render_image
from slimpose.keypoints import COCO17


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    a = generate_synthetic_coco(tmp_path / "a", 6, 3, seed=5)
    b = generate_synthetic_coco(tmp_path / "b", 6, 3, seed=5)
    c = generate_synthetic_coco(tmp_path / "c", 6, 3, seed=6)
    fa, fb, fc = _files(a["root"]), _files(b["root"]), _files(c["root"])
    assert len(fa) == 6 + 3 + 2
    assert fa == fb
    assert fa.keys() == fc.keys() and fa != fc
    assert a["train_images"] == a["train_img_dir"] and a["val_ann"].name == "person_keypoints_val.json"


def test_json_is_coco_keypoint_format(tmp_path):
    paths = generate_synthetic_coco(tmp_path, 12, 4, seed=0, image_size=(320, 256))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(paths["train_ann"]))
    cat = coco.loadCats(1)[0]
    assert cat["name"] == "person" and cat["keypoints"] == list(COCO17.names)
    assert len(cat["skeleton"]) == len(COCO17.skeleton)
    assert len(coco.getImgIds()) == 12
    anns = coco.loadAnns(coco.getAnnIds())
    per_image = np.bincount([a["image_id"] for a in anns])
    assert 1 <= per_image[1:].min() and per_image.max() <= 3
    for a in anns:
        k = np.asarray(a["keypoints"], dtype=float).reshape(17, 3)
        assert set(np.unique(k[:, 2])) <= {0, 1, 2}
        assert a["num_keypoints"] == int((k[:, 2] > 0).sum())
        assert (k[k[:, 2] == 0, :2] == 0).all()
        lab = k[:, 2] > 0
        assert (k[lab, 0] >= 0).all() and (k[lab, 0] <= 319).all() and (k[lab, 1] <= 255).all()
        x, y, w, h = a["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 320 and y + h <= 256
        assert 0 < a["area"] <= w * h and a["iscrowd"] == 0
    image = coco.loadImgs(1)[0]
    assert (paths["train_images"] / image["file_name"]).is_file()
    assert json.loads(paths["val_ann"].read_text())["images"][0]["file_name"] == "000001.jpg"


def test_visibility_flags_are_honest():
    """v=1 exactly where a later figure or an occluder covers the joint, v=2 elsewhere in the
    image, v=0 outside; and the figures are big enough to learn from."""
    counts = np.zeros(3, int)
    heights = []
    for i in range(25):
        debug: dict = {}
        image, anns = render_image(np.random.default_rng([0, 9, i]), 320, 256, debug=debug)
        assert image.shape == (256, 320, 3)
        assert len(anns) == len(debug["covered"])
        for ann, covered, mask in zip(anns, debug["covered"], debug["masks"]):
            k = np.asarray(ann["keypoints"], dtype=float).reshape(17, 3)
            for x, y, v in k:
                counts[int(v)] += 1
                if v > 0:
                    assert v == (1 if covered[int(round(y)), int(round(x))] else 2)
                    # a labelled joint lies on its own figure
                    assert mask[int(round(y)), int(round(x))] > 0
            heights.append(ann["bbox"][3])
    frac = counts / counts.sum()
    assert 0.02 < frac[1] < 0.4  # some occlusion, not most
    assert frac[2] > 0.5 and frac[0] < 0.2
    assert np.median(heights) > 0.35 * 256
