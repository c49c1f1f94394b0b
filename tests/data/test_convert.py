"""slimpose data convert: labelme folders and CVAT XML as COCO-keypoints JSON."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from slimpose.cli import main
from slimpose.config import DatasetConfig
from slimpose.data.coco import CocoSource
from slimpose.data.convert import BOX_MARGIN, cvat_to_coco, labelme_to_coco
from slimpose.data.sources import build_source
from slimpose.errors import DataError
from slimpose.keypoints import COCO17, KeypointLayout
from slimpose.metrics.coco import ground_truth_coco

W, H = 64, 48


# ----------------------------------------------------------------------------- helpers
def _point(label, x, y, group=None, **kw):
    return {"label": label, "points": [[x, y]], "group_id": group, "shape_type": "point", "flags": {}, **kw}


def _rect(label, x1, y1, x2, y2, group=None):
    return {"label": label, "points": [[x1, y1], [x2, y2]], "group_id": group, "shape_type": "rectangle",
            "flags": {}}


def _labelme(folder: Path, name: str, shapes, image_path=None, **kw) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image_path or f"{name}.jpg",
            "imageData": None, "imageHeight": H, "imageWidth": W, **kw}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def _write_images(folder: Path, data: dict) -> None:
    for im in data["images"]:
        path = folder / im["file_name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.full((im["height"], im["width"], 3), 128, np.uint8))


def _run(capsys, *args) -> tuple[int, str, str]:
    code = main(["data", "convert", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(capsys, *args) -> str:
    code, out, err = _run(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _people(folder: Path) -> None:
    """Three labelme files: two persons with group ids and boxes, one without, an empty image."""
    _labelme(folder, "b_two", [
        _point("nose", 10, 10, 1), _point("left_eye", 12, 8, 1, flags={"occluded": True}),
        _rect("person", 2, 2, 20, 30, 1),
        _point("left_eye", 40, 8, 2), _point("right_eye", 44, 8, 2), _point("nose", 42, 12, 2),
        {"label": "hair", "points": [[1, 1], [2, 2], [3, 1]], "group_id": 1, "shape_type": "polygon"}])
    _labelme(folder, "a_one", [_point("nose", 30, 20), _point("right_eye", 32, 18)])
    _labelme(folder, "c_none", [])


# ----------------------------------------------------------------------------- labelme
def test_labelme_names_persons_visibility_and_boxes(tmp_path):
    _people(tmp_path / "lm")
    data = labelme_to_coco(tmp_path / "lm", skeleton="nose-left_eye,nose-right_eye")
    cat = data["categories"][0]
    # first-seen order over the files sorted by name (a_one before b_two)
    assert cat["keypoints"] == ["nose", "right_eye", "left_eye"]
    assert cat["skeleton"] == [[1, 3], [1, 2]] and cat["id"] == 1
    assert [im["file_name"] for im in data["images"]] == ["a_one.jpg", "b_two.jpg", "c_none.jpg"]
    assert [im["id"] for im in data["images"]] == [1, 2, 3]
    assert all((im["width"], im["height"]) == (W, H) for im in data["images"])
    anns = data["annotations"]
    assert [(a["id"], a["image_id"]) for a in anns] == [(1, 1), (2, 2), (3, 2)]
    single, boxed, second = anns
    assert single["keypoints"] == [30, 20, 2, 32, 18, 2, 0, 0, 0] and single["num_keypoints"] == 2
    # joints' box (30..32, 18..20) grown by 10 % of its longer side (2 px) on each side
    m = BOX_MARGIN * 2
    assert single["bbox"] == pytest.approx([30 - m, 18 - m, 2 + 2 * m, 2 + 2 * m])
    assert boxed["keypoints"] == [10, 10, 2, 0, 0, 0, 12, 8, 1]  # occluded flag: v=1
    assert boxed["bbox"] == [2, 2, 18, 28] and boxed["area"] == 18 * 28
    assert second["keypoints"] == [42, 12, 2, 44, 8, 2, 40, 8, 2] and second["num_keypoints"] == 3
    assert all(a["category_id"] == 1 and a["iscrowd"] == 0 for a in anns)
    ground_truth_coco(data, "converted")  # what evaluation reads: pycocotools accepts it


def test_labelme_box_is_clipped_to_the_image_and_explicit_keypoints_set_the_order(tmp_path):
    _labelme(tmp_path, "edge", [_point("b", 0, 0), _point("a", W, H)])
    data = labelme_to_coco(tmp_path, keypoints="a,b,c")
    assert data["categories"][0]["keypoints"] == ["a", "b", "c"]
    ann = data["annotations"][0]
    assert ann["keypoints"] == [W, H, 2, 0, 0, 2, 0, 0, 0]
    assert ann["bbox"] == [0, 0, W, H]  # the margin would leave the image


def test_labelme_round_trip_through_the_training_loader(tmp_path, capsys):
    """Converted with the 'coco' layout's joint names, the file loads as data.train does."""
    lm = tmp_path / "lm"
    names = COCO17.names
    _labelme(lm, "img1", [_point(n, 10 + 2 * j, 5 + 2 * j, 1) for j, n in enumerate(names[:9])]
             + [_point(n, 40, 5 + 2 * j, 2) for j, n in enumerate(names[:5])] + [_rect("bbox", 35, 1, 60, 30, 2)],
             image_path="../images/img1.jpg")
    _labelme(lm, "img2", [_point("left_hip", 20, 30), _point("right_hip", 30, 30), _point("left_knee", 20, 40)],
             image_path="..\\images\\img2.jpg")  # labelme on Windows
    _labelme(lm, "img3", [], image_path="../images/img3.jpg")
    out = tmp_path / "ann.json"
    code, stdout, err = _run(capsys, "--from", "labelme", lm, "--out", out, "--keypoints", ",".join(names),
                             "--skeleton", "left_hip-right_hip,left_hip-left_knee")
    assert code == 0, err
    lines = stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("3 images (1 without persons), 3 persons, 17 keypoints (nose, left_eye, ")
    assert "2 skeleton edges: wrote " in lines[0] and f"{out}; img_dir: {lm} (the labelme folder)" in lines[0]
    data = json.loads(out.read_text())
    assert data["categories"][0]["skeleton"] == [[12, 13], [12, 14]]
    assert data["images"][1]["file_name"] == "../images/img2.jpg"
    _write_images(lm, data)
    src = build_source(DatasetConfig(type="coco", ann_file=str(out), img_dir=str(lm)), COCO17, (256, 192), train=True)
    assert len(src.instances) == 3 and not src.skipped
    first = src.instances[0]
    assert first.visible.sum() == 9 and first.keypoints[8].tolist() == [26, 21]
    assert src.instances[1].extra["bbox"].tolist() == [35, 1, 25, 29]
    assert Path(src.instances[2].image_path).resolve() == (tmp_path / "images" / "img2.jpg").resolve()


def test_any_layout_loads_with_a_layout_of_the_files_names(tmp_path):
    """Keypoint names not of a registered layout: CocoSource reads them with a layout built
    from the file's category (what a later change will do from the file itself)."""
    _people(tmp_path / "lm")
    data = labelme_to_coco(tmp_path / "lm")
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(data))
    _write_images(tmp_path / "lm", data)
    cat = data["categories"][0]
    layout = KeypointLayout("faces", tuple(cat["keypoints"]), (), tuple((a - 1, b - 1) for a, b in cat["skeleton"]),
                            (0.025,) * len(cat["keypoints"]))
    src = CocoSource(ann, tmp_path / "lm", layout, 0.75)
    assert len(src.instances) == 3
    assert src.instances[1].extra["flags"].tolist() == [2, 0, 1]


# ----------------------------------------------------------------------------- CVAT
_SVG = ('&lt;line x1="1" y1="1" x2="2" y2="2" data-type="edge" data-node-from="1" data-node-to="2"&gt;&lt;/line&gt;'
        '&lt;line x1="1" y1="1" x2="2" y2="2" data-type="edge" data-node-from="1" data-node-to="3"&gt;&lt;/line&gt;'
        '&lt;circle r="1.5" cx="1" cy="1" data-type="element node" data-element-id="1" data-node-id="1" '
        'data-label-name="nose"&gt;&lt;/circle&gt;'
        '&lt;circle r="1.5" cx="2" cy="2" data-type="element node" data-element-id="2" data-node-id="2" '
        'data-label-name="left_eye"&gt;&lt;/circle&gt;'
        '&lt;circle r="1.5" cx="3" cy="2" data-type="element node" data-element-id="3" data-node-id="3" '
        'data-label-name="right_eye"&gt;&lt;/circle&gt;')

_CVAT_SKELETON = f"""<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>7</id>
      <name>people</name>
      <labels>
        <label><name>person</name><color>#ff0000</color><type>skeleton</type><attributes/>
          <svg>{_SVG}</svg></label>
        <label><name>nose</name><type>points</type><attributes/><parent>person</parent></label>
        <label><name>left_eye</name><type>points</type><attributes/><parent>person</parent></label>
        <label><name>right_eye</name><type>points</type><attributes/><parent>person</parent></label>
        <label><name>car</name><type>rectangle</type><attributes/></label>
      </labels>
    </task>
  </meta>
  <image id="0" name="frames/a.jpg" width="{W}" height="{H}">
    <skeleton label="person" source="manual" z_order="0">
      <points label="nose" source="manual" outside="0" occluded="0" points="10.00,12.50"></points>
      <points label="left_eye" source="manual" outside="0" occluded="1" points="12.00,10.00"></points>
      <points label="right_eye" source="manual" outside="1" occluded="0" points="8.00,10.00"></points>
    </skeleton>
    <box label="person" source="manual" occluded="0" xtl="2.00" ytl="3.00" xbr="30.00" ybr="40.00" z_order="0"/>
  </image>
  <image id="1" name="frames/b.jpg" width="{W}" height="{H}">
    <skeleton label="person" source="manual" z_order="0" group_id="1">
      <points label="nose" outside="0" occluded="0" points="40,20"></points>
      <points label="right_eye" outside="0" occluded="0" points="42,18"></points>
    </skeleton>
    <box label="person" occluded="0" xtl="35" ytl="10" xbr="55" ybr="45" group_id="1"/>
    <skeleton label="person" source="manual" z_order="0">
      <points label="left_eye" outside="0" occluded="0" points="20,20"></points>
    </skeleton>
    <tag label="daylight" source="manual"/>
  </image>
  <image id="2" name="frames/c.jpg" width="{W}" height="{H}"></image>
</annotations>
"""

_CVAT_POINTS = f"""<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><labels>
    <label><name>nose</name><attributes/></label>
    <label><name>left_eye</name><attributes/></label>
  </labels></task></meta>
  <image id="0" name="a.jpg" width="{W}" height="{H}">
    <points label="left_eye" occluded="0" source="manual" points="10,10" group_id="1" z_order="0"/>
    <points label="nose" occluded="1" source="manual" points="12,14" group_id="1" z_order="0"/>
    <box label="person" occluded="0" xtl="5" ytl="5" xbr="25" ybr="40" group_id="1" z_order="0"/>
    <points label="nose" occluded="0" source="manual" points="40,14" group_id="2" z_order="0"/>
  </image>
  <image id="1" name="b.jpg" width="{W}" height="{H}">
    <points label="nose" occluded="0" source="manual" points="30,30" z_order="0"/>
    <polygon label="shadow" occluded="0" points="1,1;5,5;1,5" z_order="0"/>
  </image>
</annotations>
"""


def test_cvat_skeletons_with_meta_names_edges_and_boxes(tmp_path):
    xml = tmp_path / "annotations.xml"
    xml.write_text(_CVAT_SKELETON)
    data = cvat_to_coco(xml)
    cat = data["categories"][0]
    assert cat["keypoints"] == ["nose", "left_eye", "right_eye"]
    assert cat["skeleton"] == [[1, 2], [1, 3]]
    assert [im["file_name"] for im in data["images"]] == ["frames/a.jpg", "frames/b.jpg", "frames/c.jpg"]
    a, b1, b2 = data["annotations"]
    # outside="1": unlabelled; occluded="1": v=1
    assert a["keypoints"] == [10, 12.5, 2, 12, 10, 1, 0, 0, 0] and a["num_keypoints"] == 2
    assert a["bbox"] == [2, 3, 28, 37]  # the only box of a one-person image
    assert b1["keypoints"] == [40, 20, 2, 0, 0, 0, 42, 18, 2] and b1["bbox"] == [35, 10, 20, 35]  # its group's box
    assert b2["keypoints"] == [0, 0, 0, 20, 20, 2, 0, 0, 0] and b2["bbox"] == [20, 20, 0, 0]  # one joint: no extent
    assert [x["image_id"] for x in data["annotations"]] == [1, 2, 2]
    ground_truth_coco(data, "converted")


def test_cvat_loose_points_grouped_like_labelme(tmp_path):
    xml = tmp_path / "points.xml"
    xml.write_text(_CVAT_POINTS)
    data = cvat_to_coco(xml, skeleton=[("nose", "left_eye")])
    cat = data["categories"][0]
    assert cat["keypoints"] == ["left_eye", "nose"] and cat["skeleton"] == [[2, 1]]
    first, second, third = data["annotations"]
    assert first["keypoints"] == [10, 10, 2, 12, 14, 1] and first["bbox"] == [5, 5, 20, 35]
    assert second["keypoints"] == [0, 0, 0, 40, 14, 2] and second["image_id"] == 1
    assert third["keypoints"] == [0, 0, 0, 30, 30, 2] and third["image_id"] == 2


def test_cvat_round_trip_through_the_training_loader(tmp_path, capsys):
    xml = tmp_path / "annotations.xml"
    xml.write_text(_CVAT_SKELETON)
    out = tmp_path / "coco.json"
    code, stdout, err = _run(capsys, "--from", "cvat", xml, "--out", out, "--keypoints", ",".join(COCO17.names))
    assert code == 0, err
    assert stdout.startswith("3 images (1 without persons), 3 persons, 17 keypoints (nose, left_eye, right_eye, ")
    data = json.loads(out.read_text())
    assert data["categories"][0]["skeleton"] == [[1, 2], [1, 3]]  # the meta's edges, in the 17 joints' numbering
    img_dir = tmp_path / "images"
    _write_images(img_dir, data)
    src = build_source(DatasetConfig(type="coco", ann_file=str(out), img_dir=str(img_dir)), COCO17, (256, 192),
                       train=True)
    # the one-joint skeleton has a zero-area box: the loader skips it and says so
    assert len(src.instances) == 2 and src.skipped == {"zero_area_box": 1}
    assert src.instances[0].extra["flags"][:3].tolist() == [2, 1, 0]


# ----------------------------------------------------------------------------- errors
def _cvat(tmp_path, body: str, name="bad.xml") -> Path:
    path = tmp_path / name
    path.write_text(f'<?xml version="1.0"?>\n<annotations><version>1.1</version>{body}</annotations>')
    return path


_IMG = f'<image id="0" name="a.jpg" width="{W}" height="{H}">{{}}</image>'


@pytest.mark.parametrize("case, expected", [
    ("not_json", "bad.json: (file): not valid JSON"),
    ("no_image_path", "bad.json: imagePath: missing"),
    ("three_coordinates", "bad.json: shapes[0].points[0]: expected a point [x, y] of two finite numbers, "
                          "got [1, 2, 3]"),
    ("same_joint_twice", "bad.json: shapes[1]: a second 'nose' point in the person of group_id 4"),
    ("several_persons_no_group", "bad.json: shapes[2]: a second 'nose' point (the first is shapes[0]) and no group_id"),
    ("mixed_groups", "bad.json: shapes[1]: point 'left_eye' has no group_id while other shapes"),
    ("label_not_listed", "bad.json: shapes[1]: label 'tail' is not one of --keypoints: nose, left_eye"),
    ("two_boxes", "bad.json: shapes[2]: a second box for the person of group_id 1"),
    ("empty_folder", "lm: *.json: no labelme JSON files in this folder"),
    ("not_a_folder", "a.json: DIR: not a folder"),
    ("bad_size", "bad.json: imageWidth: expected a positive number, got 0"),
])
def test_labelme_errors_are_one_line_naming_file_and_field(tmp_path, capsys, case, expected):
    lm = tmp_path / "lm"
    lm.mkdir()
    bad = lm / "bad.json"
    _labelme(lm, "a", [_point("nose", 1, 1)])
    args = ["--from", "labelme", lm]
    if case == "not_json":
        bad.write_text("{'shapes': ")
    elif case == "no_image_path":
        _labelme(lm, "bad", [])
        bad.write_text(json.dumps({k: v for k, v in json.loads(bad.read_text()).items() if k != "imagePath"}))
    elif case == "three_coordinates":
        _labelme(lm, "bad", [{**_point("nose", 1, 1), "points": [[1, 2, 3]]}])
    elif case == "same_joint_twice":
        _labelme(lm, "bad", [_point("nose", 1, 1, 4), _point("nose", 2, 2, 4)])
    elif case == "several_persons_no_group":
        _labelme(lm, "bad", [_point("nose", 1, 1), _point("left_eye", 2, 2), _point("nose", 9, 9)])
    elif case == "mixed_groups":
        _labelme(lm, "bad", [_point("nose", 1, 1, 1), _point("left_eye", 2, 2)])
    elif case == "label_not_listed":
        _labelme(lm, "bad", [_point("nose", 1, 1), _point("tail", 2, 2)])
        args += ["--keypoints", "nose,left_eye"]
    elif case == "two_boxes":
        _labelme(lm, "bad", [_point("nose", 1, 1, 1), _rect("person", 0, 0, 5, 5, 1), _rect("bbox", 0, 0, 6, 6, 1)])
    elif case == "empty_folder":
        (lm / "a.json").unlink()
    elif case == "not_a_folder":
        args[2] = lm / "a.json"
    elif case == "bad_size":
        _labelme(lm, "bad", [], imageWidth=0)
    out = tmp_path / "out.json"
    line = _one_line_error(capsys, *args, "--out", out)
    assert line.startswith("slimpose data: error: ") and expected in line, line
    assert not out.exists()


@pytest.mark.parametrize("case, expected", [
    ("not_xml", "bad.xml: (file): not valid XML"),
    ("not_cvat", "bad.xml: (top level): not a CVAT XML file: the root element is <svg>"),
    ("video", "bad.xml: track: a 'CVAT for video' export"),
    ("no_images", "bad.xml: image: no <image> elements"),
    ("three_coordinates", "bad.xml: image[0] 'a.jpg' points[0].points: a joint ('nose') is one 'x,y' point, "
                          "got '1,2,3'"),
    ("same_joint_in_skeleton", "bad.xml: image[0] 'a.jpg' skeleton[0] points[1]: a second 'nose' point in this "
                               "skeleton"),
    ("several_persons_no_group", "bad.xml: image[0] 'a.jpg' points[1]: a second 'nose' point (the first is "
                                 "image[0] 'a.jpg' points[0]) and no group_id"),
    ("label_not_listed", "bad.xml: image[0] 'a.jpg' skeleton[0] points[0]: label 'tail' is not one of --keypoints"),
    ("no_width", "bad.xml: image[0] 'a.jpg'.width: missing"),
    ("missing_file", "gone.xml: FILE: file not found"),
])
def test_cvat_errors_are_one_line_naming_file_and_field(tmp_path, capsys, case, expected):
    path = tmp_path / "bad.xml"
    args = ["--from", "cvat", path]
    if case == "not_xml":
        path.write_text("<annotations><image></annotations>")
    elif case == "not_cvat":
        path.write_text("<svg><line/></svg>")
    elif case == "video":
        _cvat(tmp_path, '<track id="0" label="person"/>')
    elif case == "no_images":
        _cvat(tmp_path, "<meta/>")
    elif case == "three_coordinates":
        _cvat(tmp_path, _IMG.format('<points label="nose" occluded="0" points="1,2,3"/>'))
    elif case == "same_joint_in_skeleton":
        _cvat(tmp_path, _IMG.format('<skeleton label="person"><points label="nose" points="1,2"/>'
                                    '<points label="nose" points="3,4"/></skeleton>'))
    elif case == "several_persons_no_group":
        _cvat(tmp_path, _IMG.format('<points label="nose" points="1,2"/><points label="nose" points="3,4"/>'))
    elif case == "label_not_listed":
        _cvat(tmp_path, _IMG.format('<skeleton label="person"><points label="tail" points="1,2"/></skeleton>'))
        args += ["--keypoints", "nose"]
    elif case == "no_width":
        _cvat(tmp_path, '<image id="0" name="a.jpg" height="4"/>')
    elif case == "missing_file":
        args[2] = tmp_path / "gone.xml"
    out = tmp_path / "out.json"
    line = _one_line_error(capsys, *args, "--out", out)
    assert expected in line, line
    assert not out.exists()


def test_bad_keypoints_and_skeleton_arguments(tmp_path, capsys):
    _labelme(tmp_path / "lm", "a", [_point("left-eye", 1, 1), _point("nose", 2, 2)])
    out = tmp_path / "out.json"
    line = _one_line_error(capsys, "--from", "labelme", tmp_path / "lm", "--out", out, "--skeleton", "nose-ear")
    assert "--skeleton: nose-ear: expected two keypoint names joined by '-', of: left-eye, nose" in line
    line = _one_line_error(capsys, "--from", "labelme", tmp_path / "lm", "--out", out, "--keypoints", "nose,nose")
    assert "--keypoints: nose: listed twice" in line
    # a name with '-' in it: the split whose two sides are joints
    code, _, err = _run(capsys, "--from", "labelme", tmp_path / "lm", "--out", out, "--skeleton", "left-eye-nose")
    assert code == 0, err
    assert json.loads(out.read_text())["categories"][0]["skeleton"] == [[1, 2]]


def test_out_is_kept_unless_overwrite(tmp_path, capsys):
    _labelme(tmp_path / "lm", "a", [_point("nose", 1, 1)])
    out = tmp_path / "ann.json"
    out.write_text("precious")
    line = _one_line_error(capsys, "--from", "labelme", tmp_path / "lm", "--out", out)
    assert f"{out}: exists; pass --overwrite to replace it" in line
    assert out.read_text() == "precious"
    # a failed conversion with --overwrite leaves it too
    _labelme(tmp_path / "lm", "b", [_point("nose", 1, 1), _point("nose", 2, 2)])
    _one_line_error(capsys, "--from", "labelme", tmp_path / "lm", "--out", out, "--overwrite")
    assert out.read_text() == "precious"
    (tmp_path / "lm" / "b.json").unlink()
    code, stdout, err = _run(capsys, "--from", "labelme", tmp_path / "lm", "--out", out, "--overwrite")
    assert code == 0, err
    assert json.loads(out.read_text())["categories"][0]["keypoints"] == ["nose"]
    assert {p.name for p in tmp_path.iterdir()} == {"lm", "ann.json"}  # no temporary file left


def test_data_error_from_the_pure_functions(tmp_path):
    with pytest.raises(DataError, match=r"nothing\.xml: FILE: file not found"):
        cvat_to_coco(tmp_path / "nothing.xml")
    _labelme(tmp_path, "a", [_rect("person", 0, 0, 5, 5)])
    with pytest.raises(DataError, match="no point shapes in any of the 1 files"):
        labelme_to_coco(tmp_path)


def test_cvat_svg_without_names_takes_the_sublabels_and_lone_boxes_are_no_persons(tmp_path):
    svg = '&lt;line data-type="edge" data-node-from="2" data-node-to="1"&gt;&lt;/line&gt;'
    meta = ("<meta><project><labels><label><name>hand</name><type>skeleton</type>"
            f"<svg>{svg}</svg></label>"
            "<label><name>wrist</name><type>points</type><parent>hand</parent></label>"
            "<label><name>thumb</name><type>points</type><parent>hand</parent></label>"
            "</labels></project></meta>")
    xml = _cvat(tmp_path, meta + _IMG.format('<box label="car" xtl="1" ytl="1" xbr="9" ybr="9" group_id="3"/>'
                                             '<skeleton label="hand"><points label="thumb" points="5,6"/>'
                                             '<points label="wrist" points="1,2"/></skeleton>'))
    data = cvat_to_coco(xml)
    assert data["categories"][0]["keypoints"] == ["wrist", "thumb"]
    assert data["categories"][0]["skeleton"] == [[2, 1]]
    (ann,) = data["annotations"]  # the car's box, alone in its group, is not a person
    assert ann["keypoints"] == [1, 2, 2, 5, 6, 2]
    assert ann["bbox"] == pytest.approx([0.6, 1.6, 4.8, 4.8])  # 4 x 4 joints' box grown by 0.4 on each side


# ----------------------------------------------------------------------------- --from coco
def _coco_file(path: Path) -> Path:
    names = ["nose", "left_eye", "right_eye", "left_shoulder", "right_shoulder"]
    data = {"images": [{"id": 7, "file_name": "a.jpg", "width": 100, "height": 80}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "iscrowd": 0, "bbox": [10, 10, 50, 60],
                             "area": 3000, "num_keypoints": 4,
                             "keypoints": [20, 20, 2, 22, 18, 2, 0, 0, 0, 15, 40, 1, 45, 40, 2]}],
            "categories": [{"id": 1, "name": "person", "keypoints": names, "skeleton": [[1, 2], [1, 3], [4, 5], [2, 4]]}]}
    path.write_text(json.dumps(data))
    return path


def test_coco_cut_to_named_joints_keeps_images_boxes_and_edges_between_kept_joints(tmp_path, capsys):
    src = _coco_file(tmp_path / "full.json")
    code, out, _ = _run(capsys, "--from", "coco", str(src), "--keypoints",
                        "right_shoulder,left_shoulder,right_eye", "--out", str(tmp_path / "cut.json"))
    assert code == 0 and "3 keypoints (right_shoulder, left_shoulder, right_eye)" in out
    cut = json.loads((tmp_path / "cut.json").read_text())
    assert cut["images"] == json.loads(src.read_text())["images"]
    ann = cut["annotations"][0]
    assert ann["keypoints"] == [45, 40, 2, 15, 40, 1, 0, 0, 0] and ann["num_keypoints"] == 2
    assert ann["bbox"] == [10, 10, 50, 60]
    assert cut["categories"][0]["keypoints"] == ["right_shoulder", "left_shoulder", "right_eye"]
    assert cut["categories"][0]["skeleton"] == [[2, 1]]  # left-right shoulder; the eye's edges went with the nose


@pytest.mark.parametrize("args,expected", [
    (["--keypoints", "nose,tail"], "full.json: categories[0].keypoints: has no joint tail"),
    ([], "--from coco needs the joints to keep"),
])
def test_coco_cut_errors_are_one_line(tmp_path, capsys, args, expected):
    src = _coco_file(tmp_path / "full.json")
    assert expected in _one_line_error(capsys, "--from", "coco", str(src), *args,
                                       "--out", str(tmp_path / "cut.json"))
