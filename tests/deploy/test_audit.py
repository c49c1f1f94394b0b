"""``slimpose audit``: people whose left/right labels look exchanged are listed limb by
limb, from a shipped model's predictions on the bundled photos; the labels are only read."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from slimpose.cli import main
from slimpose.deploy.runtime import OnnxPoseEstimator
from slimpose.keypoints import get_layout
from slimpose.metrics.sides import limb_groups

ASSETS = Path(__file__).resolve().parents[2] / "src" / "slimpose" / "assets"
MODEL = "lpn_50_coco_192x144"


@pytest.fixture(scope="module")
def photo_people():
    """The bundled photos' people as (image name, box, the shipped COCO model's flip-test joints)."""
    estimator = OnnxPoseEstimator.from_pretrained(MODEL)
    people = []
    for entry in json.loads((ASSETS / "boxes.json").read_text()):
        image = cv2.imread(str(ASSETS / entry["image_id"]))
        joints, _ = estimator(image, boxes_xywh=np.array([entry["bbox"]]), flip=True)
        people.append((entry["image_id"], entry["bbox"], joints[0]))
    return people


def _write_data(folder: Path, people, joints_of) -> Path:
    """A COCO-format file of ``people`` labelled with ``joints_of(i, joints)``, and its config."""
    images, anns = [], []
    for i, (name, box, joints) in enumerate(people):
        image = cv2.imread(str(ASSETS / name))
        images.append({"id": i + 1, "file_name": name, "height": image.shape[0], "width": image.shape[1]})
        xy = joints_of(i, joints)
        anns.append({"id": 100 + i, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "bbox": box,
                     "area": box[2] * box[3], "num_keypoints": len(xy),
                     "keypoints": np.c_[xy, np.full(len(xy), 2)].ravel().tolist()})
    layout = get_layout("coco")
    ann = folder / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns, "categories": [
        {"id": 1, "name": "person", "keypoints": list(layout.names),
         "skeleton": [[a + 1, b + 1] for a, b in layout.skeleton]}]}))
    config = folder / "mine.yaml"
    config.write_text(f"model: {{name: lpn_50}}\ndata:\n  layout: coco\n  input_size: [192, 144]\n"
                      f"  train: {{type: coco, ann_file: {ann}, img_dir: {ASSETS}}}\n"
                      f"  val: {{type: coco, ann_file: {ann}, img_dir: {ASSETS}}}\n")
    return config


def _widest_arms(people) -> int:
    """The person whose left and right arm joints lie farthest apart (relative to the box)."""
    arms = list(limb_groups(get_layout("coco"))["shoulder-elbow-wrist"])
    flip = get_layout("coco").flip_index
    spread = [np.linalg.norm(j[arms] - j[[flip[a] for a in arms]], axis=1).min() / max(box[2:]) for _, box, j in people]
    return int(np.argmax(spread))


def test_labels_the_model_agrees_with_list_no_one(photo_people, tmp_path, capsys):
    config = _write_data(tmp_path, photo_people, lambda i, joints: joints)
    out = tmp_path / "audit.json"
    assert main(["audit", str(config), "--model", MODEL, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["people"] == report["checked"] == 3
    assert report["mirrored"] == {"shoulder-elbow-wrist": 0, "hip-knee-ankle": 0}
    assert report["flagged"] == []
    assert "3 people read, 3 checked" in capsys.readouterr().out


def test_a_person_whose_arms_are_labelled_mirrored_is_listed_and_the_labels_are_left_alone(photo_people, tmp_path,
                                                                                           capsys):
    who = _widest_arms(photo_people)
    layout = get_layout("coco")
    arms = list(limb_groups(layout)["shoulder-elbow-wrist"])

    def mirror_arms(i, joints):
        xy = joints.copy()
        if i == who:
            xy[arms] = joints[[layout.flip_index[a] for a in arms]]
        return xy

    config = _write_data(tmp_path, photo_people, mirror_arms)
    labels = (tmp_path / "ann.json").read_bytes()
    assert main(["audit", str(config), "--model", MODEL, "--split", "val", "--out", str(tmp_path / "a.json")]) == 0
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["mirrored"] == {"shoulder-elbow-wrist": 1, "hip-knee-ankle": 0}
    (entry,) = report["flagged"]
    assert entry["image"].endswith(photo_people[who][0]) and entry["instance_id"] == 100 + who
    assert entry["limb"] == "shoulder-elbow-wrist" and entry["hits_mirrored"] == 6
    assert entry["hits_as_labelled"] <= 4
    assert photo_people[who][0] in capsys.readouterr().out
    assert (tmp_path / "ann.json").read_bytes() == labels


def test_a_model_of_other_joints_or_a_folder_out_is_one_clear_line(photo_people, tmp_path, capsys):
    config = _write_data(tmp_path, photo_people, lambda i, joints: joints)
    assert main(["audit", str(config), "--model", "lpn_50_lsp_128x96_int8"]) != 0
    assert "cannot be scored on 'coco' data" in capsys.readouterr().err
    assert main(["audit", str(config), "--model", MODEL, "--out", str(tmp_path)]) != 0
    assert "is a folder" in capsys.readouterr().err
    assert main(["audit", str(config), "--model", MODEL, "--margin", "0"]) != 0
    assert "--margin 0" in capsys.readouterr().err
