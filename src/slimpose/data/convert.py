"""Keypoint annotations from labelling tools (labelme, CVAT) as a COCO-keypoints JSON.

``slimpose data convert --from labelme DIR --out ann.json`` and
``slimpose data convert --from cvat annotations.xml --out ann.json`` write a file that
:class:`~slimpose.data.coco.CocoSource` reads (with ``img_dir`` the folder the tool's
image paths are relative to: the labelme folder, the CVAT export's ``images/`` folder).

Persons. A person is the point shapes that share a group id (labelme ``group_id``, CVAT
``group_id``), or one CVAT ``<skeleton>``. Shapes without a group id are allowed where an
image has one person only: an image whose shapes mix grouped and ungrouped ones, or whose
ungrouped shapes hold one joint twice (several persons), is refused.

Visibility (COCO's v). A labelled point is v=2; one marked occluded (labelme: the
shape's ``flags: {"occluded": true}``; CVAT: ``occluded="1"``) is v=1; a joint without a
point, or a CVAT point with ``outside="1"``, is unlabelled: (0, 0, 0).

Boxes. A person's rectangle (labelme ``shape_type: rectangle``, any label, e.g.
``person`` or ``bbox``; CVAT ``<box>`` of the person's group, or the only box of an
image with one ungrouped person) is its box, clipped to the image. Without one the box is
the labelled joints' bounding box grown on every side by :data:`BOX_MARGIN` (10 %) of its
longer side, so that a row or a column of joints still gets a box, and clipped to the
image. A rectangle without any point in its group is not a person (it may frame
anything) and is left out; so are shapes of other kinds (polygons, lines, masks).

Keypoint names. ``keypoints`` (``--keypoints a,b,c``) when given: a point whose label is
not one of them is refused. Otherwise a CVAT file's skeleton label (``<meta>``'s
``<label>`` of ``<type>skeleton</type>``: its nodes in node-id order, its edges as the
skeleton), else the point labels in the order they first occur (labelme: files sorted by
name). ``skeleton`` (``--skeleton a-b,b-c``) gives the edges; without it and without a
CVAT skeleton label there are none.

Images keep the tool's order (labelme: files sorted by name) and are numbered from 1;
images without a person are kept, without annotations. Every error is a
:class:`~slimpose.errors.DataError` naming the file and the field.
"""

from __future__ import annotations

import json
import math
import reprlib
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from slimpose.data.base import load_json
from slimpose.errors import DataError, OutputError
from slimpose.io import write_json_atomic
from slimpose.metrics.coco import is_finite_number

# Each side of a box made from the joints grows by this fraction of the joints' box's longer side.
BOX_MARGIN = 0.10
FORMATS = ("labelme", "cvat", "coco")


# ----------------------------------------------------------------------------- shared
@dataclass
class _Shape:
    """One point or one box of an image, as the tool wrote it."""
    kind: str  # "point" or "box"
    label: str
    where: str  # the field that names it in errors, e.g. "shapes[3]"
    group: int | None = None
    xy: tuple[float, float] = (0.0, 0.0)  # point
    v: int = 2  # point: 2 visible, 1 occluded, 0 unlabelled (CVAT outside="1")
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # x1, y1, x2, y2


@dataclass
class _Person:
    where: str
    joints: dict[str, _Shape] = field(default_factory=dict)
    box: _Shape | None = None


@dataclass
class _Image:
    file_name: str
    width: float
    height: float
    persons: list[_Person] = field(default_factory=list)


def _names_list(keypoints, source: str = "--keypoints") -> list[str] | None:
    """``keypoints`` as a list of names ("a,b,c" or a sequence), None when not given."""
    if keypoints is None:
        return None
    names = [n.strip() for n in keypoints.split(",")] if isinstance(keypoints, str) else list(keypoints)
    if not names or any(not isinstance(n, str) or not n for n in names):
        raise DataError(source, "keypoints", f"expected joint names separated by commas, got {reprlib.repr(keypoints)}")
    seen = set()
    for n in names:
        if n in seen:
            raise DataError(source, n, "listed twice")
        seen.add(n)
    return names


def _skeleton_pairs(skeleton, names: list[str], source: str = "--skeleton") -> list[tuple[int, int]]:
    """``skeleton`` ("a-b,b-c" or a sequence of name pairs) as 0-based index pairs."""
    index = {n: i for i, n in enumerate(names)}
    if isinstance(skeleton, str):
        entries = [e.strip() for e in skeleton.split(",") if e.strip()]
        pairs = []
        for entry in entries:
            # names may hold '-' themselves: take the split whose two sides are both joints
            splits = [(entry[:i].strip(), entry[i + 1:].strip()) for i, c in enumerate(entry) if c == "-"]
            known = [p for p in splits if p[0] in index and p[1] in index]
            if len(known) != 1:
                raise DataError(source, entry, f"expected two keypoint names joined by '-', of: {', '.join(names)}")
            pairs.append(known[0])
    else:
        pairs = [tuple(p) for p in skeleton]
    edges: list[tuple[int, int]] = []
    for pair in pairs:
        if len(pair) != 2 or not all(p in index for p in pair):
            raise DataError(source, "-".join(map(str, pair)), f"not two keypoint names of: {', '.join(names)}")
        a, b = index[pair[0]], index[pair[1]]
        if a == b:
            raise DataError(source, f"{pair[0]}-{pair[1]}", "an edge joins two different joints")
        if (a, b) not in edges and (b, a) not in edges:
            edges.append((a, b))
    return edges


def _first_seen_labels(images_shapes) -> list[str]:
    names: dict[str, None] = {}
    for shapes in images_shapes:
        for s in shapes:
            if s.kind == "point":
                names.setdefault(s.label, None)
    return list(names)


def _group(shapes: list[_Shape], source: str, names: list[str], explicit: bool) -> list[_Person]:
    """The persons of one image's loose shapes (labelme shapes, CVAT <points>/<box>)."""
    known = set(names)
    for s in shapes:
        if s.kind == "point" and s.label not in known:
            how = "--keypoints" if explicit else "the keypoint names"
            raise DataError(source, s.where, f"label {s.label!r} is not one of {how}: {', '.join(names)}")
    grouped = [s for s in shapes if s.group is not None]
    ungrouped = [s for s in shapes if s.group is None]
    if grouped and ungrouped:
        s = ungrouped[0]
        groups = sorted({g.group for g in grouped})
        raise DataError(source, s.where, f"{s.kind} {s.label!r} has no group_id while other shapes of this image "
                        f"have one ({', '.join(map(str, groups))}): with several persons, give every person's "
                        "shapes their own group_id")
    persons: dict[int | None, _Person] = {}
    for s in shapes:
        person = persons.get(s.group)
        if person is None:
            where = "shapes without group_id" if s.group is None else f"group_id {s.group}"
            person = persons[s.group] = _Person(where)
        if s.kind == "box":
            if person.box is not None:
                raise DataError(source, s.where, f"a second box for the person of {person.where} (the first is "
                                f"{person.box.where}); one box per person"
                                + ("; with several persons, give each person's shapes a group_id"
                                   if s.group is None else ""))
            person.box = s
        elif s.label in person.joints:
            first = person.joints[s.label].where
            if s.group is None:
                raise DataError(source, s.where, f"a second {s.label!r} point (the first is {first}) and no "
                                "group_id: an image with several persons needs a group_id on each person's shapes")
            raise DataError(source, s.where, f"a second {s.label!r} point in the person of group_id {s.group} (the "
                            f"first is {first}); one point per joint and person")
        else:
            person.joints[s.label] = s
    # a box alone may frame anything: a person has at least one point
    return [p for p in persons.values() if p.joints]


def _person_box(person: _Person, width: float, height: float) -> list[float] | None:
    """[x, y, w, h] in the image: the person's box, else the labelled joints' grown box."""
    if person.box is not None:
        x1, y1, x2, y2 = person.box.box
    else:
        pts = [j.xy for j in person.joints.values() if j.v > 0]
        if not pts:
            return None
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
        margin = BOX_MARGIN * max(x2 - x1, y2 - y1)
        x1, y1, x2, y2 = x1 - margin, y1 - margin, x2 + margin, y2 + margin
    x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
    y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
    return [_tidy(x1), _tidy(y1), _tidy(x2 - x1), _tidy(y2 - y1)]


def _tidy(v: float) -> float | int:
    """A coordinate as JSON writes it best: 12 rather than 12.0000000001."""
    v = round(float(v), 3)
    return int(v) if v.is_integer() else v


def _coco(images: list[_Image], names: list[str], edges: list[tuple[int, int]], description: str) -> dict:
    out_images, annotations = [], []
    for image_id, img in enumerate(images, start=1):
        out_images.append({"id": image_id, "file_name": img.file_name, "width": _tidy(img.width),
                           "height": _tidy(img.height)})
        for person in img.persons:
            bbox = _person_box(person, img.width, img.height)
            if bbox is None:  # no labelled joint and no box: nothing to train or score on
                continue
            keypoints: list[float | int] = []
            for name in names:
                joint = person.joints.get(name)
                if joint is None or joint.v == 0:
                    keypoints += [0, 0, 0]
                else:
                    keypoints += [_tidy(joint.xy[0]), _tidy(joint.xy[1]), joint.v]
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                "bbox": bbox, "area": _tidy(bbox[2] * bbox[3]),
                "num_keypoints": sum(1 for v in keypoints[2::3] if v > 0), "keypoints": keypoints})
    return {
        "info": {"description": description},
        "images": out_images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(names),
                        "skeleton": [[a + 1, b + 1] for a, b in edges]}],
    }


# ----------------------------------------------------------------------------- labelme
def _labelme_number(value, source: str, where: str, positive: bool = False) -> float:
    if not is_finite_number(value) or (positive and not value > 0):
        kind = "a positive number" if positive else "a finite number"
        raise DataError(source, where, f"expected {kind}, got {reprlib.repr(value)}")
    return float(value)


def _labelme_xy(point, source: str, where: str) -> tuple[float, float]:
    if not (isinstance(point, (list, tuple)) and len(point) == 2 and all(is_finite_number(v) for v in point)):
        raise DataError(source, where, f"expected a point [x, y] of two finite numbers, got {reprlib.repr(point)}")
    return float(point[0]), float(point[1])


def _labelme_shapes(data: dict, source: str) -> list[_Shape]:
    shapes = data.get("shapes")
    if not isinstance(shapes, list):
        raise DataError(source, "shapes", "missing or not a list (is this a labelme file?)")
    out = []
    for i, shape in enumerate(shapes):
        where = f"shapes[{i}]"
        if not isinstance(shape, dict):
            raise DataError(source, where, "not an object")
        kind = shape.get("shape_type") or "point"  # labelme leaves it out of old files' points
        if kind not in ("point", "rectangle"):
            continue  # polygons, lines, masks: not keypoints
        label = shape.get("label")
        if not isinstance(label, str) or not label.strip():
            raise DataError(source, f"{where}.label", f"expected a joint name, got {reprlib.repr(label)}")
        group = shape.get("group_id")
        if group is not None:
            if not (is_finite_number(group) and float(group).is_integer()):
                raise DataError(source, f"{where}.group_id", f"expected an integer or null, got {reprlib.repr(group)}")
            group = int(group)
        points = shape.get("points")
        if not isinstance(points, list):
            raise DataError(source, f"{where}.points", f"expected a list of [x, y] points, got {reprlib.repr(points)}")
        if kind == "point":
            if len(points) != 1:
                raise DataError(source, f"{where}.points", f"a point shape ({label!r}) holds one [x, y] point, got "
                                f"{reprlib.repr(points)}")
            flags = shape.get("flags")
            occluded = isinstance(flags, dict) and flags.get("occluded") in (True, 1)
            out.append(_Shape("point", label.strip(), where, group, _labelme_xy(points[0], source,
                                                                                  f"{where}.points[0]"),
                              v=1 if occluded else 2))
        else:
            if len(points) != 2:
                raise DataError(source, f"{where}.points", f"a rectangle ({label!r}) holds two corner points, got "
                                f"{reprlib.repr(points)}")
            (xa, ya), (xb, yb) = (_labelme_xy(p, source, f"{where}.points[{j}]") for j, p in enumerate(points))
            out.append(_Shape("box", label.strip(), where, group,
                              box=(min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb))))
    return out


def _read_labelme_file(path: Path) -> tuple[_Image, list[_Shape]]:
    source = str(path)
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(source, "(file)", f"not valid JSON ({e})") from None
    except OSError as e:
        raise DataError(source, "(file)", f"cannot be read ({e.strerror or e})") from None
    if not isinstance(data, dict):
        raise DataError(source, "(top level)", "expected a labelme JSON object with shapes and imagePath")
    image_path = data.get("imagePath")
    if not isinstance(image_path, str) or not image_path.strip():
        raise DataError(source, "imagePath", "missing: the image this file labels" if image_path is None
                        else f"expected the image's path, got {reprlib.repr(image_path)}")
    for key in ("imageWidth", "imageHeight"):
        if key not in data:
            raise DataError(source, key, "missing: the image size")
    width = _labelme_number(data["imageWidth"], source, "imageWidth", positive=True)
    height = _labelme_number(data["imageHeight"], source, "imageHeight", positive=True)
    # labelme on Windows writes backslashes; the path is relative to the JSON's folder
    image = _Image(image_path.strip().replace("\\", "/"), width, height)
    return image, _labelme_shapes(data, source)


def labelme_to_coco(folder: str | Path, keypoints: Sequence[str] | str | None = None,
                    skeleton: Sequence[Sequence[str]] | str | None = None) -> dict:
    """A COCO-keypoints dict of a folder of labelme JSON files (one per image, read in
    file-name order, not recursively). Each image's ``file_name`` is its ``imagePath``,
    relative to ``folder``. See the module docstring for persons, visibility and boxes."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(str(folder), "DIR", "not a folder: labelme writes one JSON file per image into a folder"
                        if folder.exists() else "folder not found")
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".json" and p.is_file()),
                   key=lambda p: p.name)
    if not files:
        raise DataError(str(folder), "*.json", "no labelme JSON files in this folder")
    read = [_read_labelme_file(p) for p in files]
    explicit = keypoints is not None
    names = _names_list(keypoints) if explicit else _first_seen_labels(shapes for _, shapes in read)
    if not names:
        raise DataError(str(folder), "shapes", f"no point shapes in any of the {len(files)} files: nothing to "
                        "take keypoints from")
    edges = _skeleton_pairs(skeleton, names) if skeleton else []
    images = []
    for path, (image, shapes) in zip(files, read):
        image.persons = _group(shapes, str(path), names, explicit)
        images.append(image)
    return _coco(images, names, edges, f"converted from labelme folder {folder} by slimpose data convert")


# ----------------------------------------------------------------------------- CVAT
def _attr_number(el: ET.Element, key: str, source: str, where: str, positive: bool = False) -> float:
    text = el.get(key)
    if text is None:
        raise DataError(source, f"{where}.{key}", "missing")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or (positive and not value > 0):
        kind = "a positive number" if positive else "a finite number"
        raise DataError(source, f"{where}.{key}", f"expected {kind}, got {text!r}")
    return value


def _attr_flag(el: ET.Element, key: str, source: str, where: str) -> bool:
    text = (el.get(key) or "0").strip().lower()
    if text not in ("0", "1", "true", "false"):
        raise DataError(source, f"{where}.{key}", f"expected 0 or 1, got {text!r}")
    return text in ("1", "true")


def _attr_group(el: ET.Element, source: str, where: str) -> int | None:
    text = el.get("group_id")
    if text is None or text.strip() in ("", "0"):  # CVAT: group 0 is no group
        return None
    try:
        return int(text)
    except ValueError:
        raise DataError(source, f"{where}.group_id", f"expected an integer, got {text!r}") from None


def _cvat_point(el: ET.Element, source: str, where: str) -> _Shape:
    label = (el.get("label") or "").strip()
    if not label:
        raise DataError(source, f"{where}.label", "missing: the joint name")
    text = el.get("points")
    if text is None:
        raise DataError(source, f"{where}.points", "missing")
    coords = [c.strip() for c in text.strip().split(",")]
    try:
        xy = tuple(float(c) for c in coords)
    except ValueError:
        xy = ()
    if ";" in text or len(xy) != 2 or not all(math.isfinite(c) for c in xy):
        raise DataError(source, f"{where}.points", f"a joint ({label!r}) is one 'x,y' point, got {text!r}")
    outside = _attr_flag(el, "outside", source, where)
    occluded = _attr_flag(el, "occluded", source, where)
    return _Shape("point", label, where, _attr_group(el, source, where), (xy[0], xy[1]),
                  v=0 if outside else 1 if occluded else 2)


def _cvat_skeleton_label(root: ET.Element, source: str) -> tuple[list[str], list[tuple[str, str]]] | None:
    """The joint names and edges of the meta's skeleton label, None without one."""
    labels = [el for el in root.iterfind("meta/*/labels/label")]
    skeletons = [el for el in labels if (el.findtext("type") or "").strip() == "skeleton"]
    if not skeletons:
        return None
    if len(skeletons) > 1:
        found = ", ".join(repr((el.findtext("name") or "").strip()) for el in skeletons)
        raise DataError(source, "meta labels", f"{len(skeletons)} skeleton labels ({found}): one keypoint set per "
                        "file is converted")
    skel = skeletons[0]
    skel_name = (skel.findtext("name") or "").strip()
    svg = skel.find("svg")
    if svg is None or not len(svg):  # CVAT writes the SVG as escaped text
        try:
            svg = ET.fromstring(f"<root>{skel.findtext('svg') or ''}</root>")
        except ET.ParseError as e:
            raise DataError(source, f"meta label {skel_name!r} svg", f"not readable SVG ({e})") from None
    nodes: dict[str, str] = {}
    for circle in svg.iter("circle"):
        node_id, name = circle.get("data-node-id"), circle.get("data-label-name")
        if node_id is not None and name:
            nodes[node_id] = name.strip()
    sublabels = [(el.findtext("name") or "").strip() for el in labels
                 if (el.findtext("parent") or "").strip() == skel_name]
    if nodes:
        names = [nodes[k] for k in sorted(nodes, key=lambda k: int(k) if k.isdigit() else k)]
    else:  # circles without names: the sublabels, whose order is the node order
        names = sublabels
        nodes = {str(i): n for i, n in enumerate(names, start=1)}
    if not names:
        raise DataError(source, f"meta label {skel_name!r}", "a skeleton label without points")
    edges = []
    for line in svg.iter("line"):
        a, b = nodes.get(line.get("data-node-from", "")), nodes.get(line.get("data-node-to", ""))
        if a and b:
            edges.append((a, b))
    return names, edges


def cvat_to_coco(path: str | Path, keypoints: Sequence[str] | str | None = None,
                 skeleton: Sequence[Sequence[str]] | str | None = None) -> dict:
    """A COCO-keypoints dict of a "CVAT for images 1.1" XML file: ``<skeleton>`` elements
    (CVAT 2.3 and later) and loose ``<points>`` grouped by ``group_id``, with ``<box>``
    elements as boxes. Each image's ``file_name`` is its ``name`` attribute (relative to the
    export's ``images/`` folder). See the module docstring for persons, visibility and boxes."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise DataError(source, "FILE", "is a folder, not a CVAT XML file" if path.is_dir() else "file not found")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise DataError(source, "(file)", f"not valid XML ({e})") from None
    except OSError as e:
        raise DataError(source, "(file)", f"cannot be read ({e.strerror or e})") from None
    if root.tag != "annotations":
        raise DataError(source, "(top level)", f"not a CVAT XML file: the root element is <{root.tag}>, CVAT writes "
                        "<annotations>")
    image_els = root.findall("image")
    if not image_els:
        if root.find("track") is not None:
            raise DataError(source, "track", "a 'CVAT for video' export (tracks): export the task as 'CVAT for "
                            "images 1.1'")
        raise DataError(source, "image", "no <image> elements: nothing to convert")

    # read every image's shapes first: the keypoint names may come from all of them
    read: list[tuple[_Image, list[_Shape], list[tuple[str, int | None, list[_Shape]]]]] = []
    for i, el in enumerate(image_els):
        name = (el.get("name") or "").strip()
        where = f"image[{i}]" + (f" {name!r}" if name else "")
        if not name:
            raise DataError(source, f"{where}.name", "missing: the image's file name")
        image = _Image(name.replace("\\", "/"), _attr_number(el, "width", source, where, positive=True),
                       _attr_number(el, "height", source, where, positive=True))
        loose: list[_Shape] = []
        skeletons: list[tuple[str, int | None, list[_Shape]]] = []
        counts: dict[str, int] = {}
        for child in el:
            n = counts[child.tag] = counts.get(child.tag, -1) + 1
            cwhere = f"{where} {child.tag}[{n}]"
            if child.tag == "points":
                loose.append(_cvat_point(child, source, cwhere))
            elif child.tag == "box":
                label = (child.get("label") or "").strip()
                x1, y1, x2, y2 = (_attr_number(child, k, source, cwhere) for k in ("xtl", "ytl", "xbr", "ybr"))
                loose.append(_Shape("box", label, cwhere, _attr_group(child, source, cwhere),
                                    box=(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))))
            elif child.tag == "skeleton":
                joints = [_cvat_point(p, source, f"{cwhere} points[{j}]")
                          for j, p in enumerate(child.findall("points"))]
                skeletons.append((cwhere, _attr_group(child, source, cwhere), joints))
            # tags, polygons, polylines, ellipses, masks, cuboids: not keypoints
        read.append((image, loose, skeletons))

    explicit = keypoints is not None
    meta = _cvat_skeleton_label(root, source)
    if explicit:
        names = _names_list(keypoints)
    elif meta is not None:
        names = meta[0]
    else:
        names = _first_seen_labels([*loose, *(j for _, _, joints in skel for j in joints)] for _, loose, skel in read)
    if not names:
        raise DataError(source, "points", "no <points> or <skeleton> elements in any image: nothing to take "
                        "keypoints from")
    if skeleton:
        edges = _skeleton_pairs(skeleton, names)
    elif meta is not None:  # the meta's edges between joints that are kept
        edges = _skeleton_pairs([e for e in meta[1] if e[0] in names and e[1] in names], names,
                                f"{source}: meta skeleton")
    else:
        edges = []

    images = []
    known = set(names)
    how = "--keypoints" if explicit else "the skeleton label's points" if meta is not None else "the keypoint names"
    for image, loose, skeletons in read:
        persons = _group(loose, source, names, explicit)
        boxes = {s.group: s for s in loose if s.kind == "box"}
        point_groups = {s.group for s in loose if s.kind == "point"}
        for where, group, joints in skeletons:
            person = _Person(where)
            for j in joints:
                if j.label not in known:
                    raise DataError(source, j.where, f"label {j.label!r} is not one of {how}: {', '.join(names)}")
                if j.label in person.joints:
                    raise DataError(source, j.where, f"a second {j.label!r} point in this skeleton (the first is "
                                    f"{person.joints[j.label].where}); one point per joint")
                person.joints[j.label] = j
            # the skeleton's box: the box of its group, or the only box of a one-person image
            if group is not None and group in boxes and group not in point_groups:
                person.box = boxes[group]
            elif group is None and len(skeletons) == 1 and not point_groups and len(boxes) == 1 and None in boxes:
                person.box = boxes[None]
            persons.append(person)
        image.persons = persons
        images.append(image)
    return _coco(images, names, edges, f"converted from CVAT file {path} by slimpose data convert")


# ----------------------------------------------------------------------------- coco
def coco_keypoint_subset(path: str | Path, keypoints: Sequence[str] | str | None,
                         skeleton: Sequence | str | None = None) -> dict:
    """A COCO-keypoints file cut to the joints ``keypoints`` names, in that order: a new
    layout from an existing data set (COCO's face, an upper body). Images, boxes and the
    other fields stay; each person's ``keypoints`` and ``num_keypoints`` are recomputed;
    the skeleton keeps the file's edges between kept joints unless ``skeleton`` is given."""
    source = str(path)
    data = load_json(path, "INPUT")
    cats = data.get("categories") if isinstance(data, dict) else None
    if not isinstance(cats, list) or not cats or not isinstance(cats[0], dict):
        raise DataError(source, "categories", "missing or empty: a COCO-keypoints file has a person category")
    all_names = cats[0].get("keypoints")
    if not isinstance(all_names, list) or not all(isinstance(n, str) for n in all_names):
        raise DataError(source, "categories[0].keypoints", "missing or not a list of joint names")
    names = _names_list(keypoints)
    if names is None:
        raise DataError("--keypoints", "keypoints", f"--from coco needs the joints to keep, of: {', '.join(all_names)}")
    unknown = [n for n in names if n not in all_names]
    if unknown:
        raise DataError(source, "categories[0].keypoints", f"has no joint {', '.join(unknown)}; it has: "
                        f"{', '.join(all_names)}")
    keep = [all_names.index(n) for n in names]
    if skeleton is None:
        old_edges = cats[0].get("skeleton") or []
        edges = [(keep.index(a - 1), keep.index(b - 1)) for a, b in old_edges
                 if isinstance(a, int) and isinstance(b, int) and a - 1 in keep and b - 1 in keep]
    else:
        edges = _skeleton_pairs(skeleton, names)
    annotations = []
    for i, ann in enumerate(data.get("annotations") or []):
        kps = ann.get("keypoints") if isinstance(ann, dict) else None
        if kps is None:
            annotations.append(ann)
            continue
        if not isinstance(kps, list) or len(kps) != 3 * len(all_names):
            raise DataError(source, f"annotations[{i}].keypoints",
                            f"expected {3 * len(all_names)} numbers (x, y, v per joint)")
        cut = [value for j in keep for value in kps[3 * j:3 * j + 3]]
        annotations.append({**ann, "keypoints": cut,
                            "num_keypoints": sum(1 for v in cut[2::3] if is_finite_number(v) and v > 0)})
    category = {**cats[0], "keypoints": names, "skeleton": [[a + 1, b + 1] for a, b in edges]}
    info = {**(data.get("info") or {}), "description": f"{len(names)} joints of {source}, cut by slimpose data convert"}
    return {**data, "info": info, "annotations": annotations, "categories": [category, *cats[1:]]}


# ----------------------------------------------------------------------------- command
def convert(fmt: str, src: str | Path, out: str | Path, keypoints=None, skeleton=None,
            overwrite: bool = False) -> dict:
    """Convert ``src`` (``fmt``: labelme or cvat) and write ``out`` atomically; an existing
    ``out`` is kept unless ``overwrite``. Returns the COCO dict."""
    out = Path(out)
    if out.is_dir():
        raise OutputError(f"{out}: is a folder; give the path of the JSON file to write")
    if out.exists() and not overwrite:
        raise OutputError(f"{out}: exists; pass --overwrite to replace it")
    if fmt == "labelme":
        data = labelme_to_coco(src, keypoints, skeleton)
    elif fmt == "cvat":
        data = cvat_to_coco(src, keypoints, skeleton)
    elif fmt == "coco":
        data = coco_keypoint_subset(src, keypoints, skeleton)
    else:
        raise DataError("--from", fmt, f"unknown format; known: {', '.join(FORMATS)}")
    write_json_atomic(out, data, indent=None)  # compact, as COCO's own files
    return data


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def summary(data: dict, fmt: str, src: str | Path, out: str | Path) -> str:
    """One line: images, persons, keypoints, skeleton edges, where it was written."""
    cat = data["categories"][0]
    n_images = len(data["images"])
    empty = n_images - len({a["image_id"] for a in data["annotations"]})
    img_dir = {"labelme": f"{src} (the labelme folder)", "cvat": "the CVAT export's images/ folder",
               "coco": f"the folder {src}'s images are in"}[fmt]
    return (f"{_count(n_images, 'image')} ({empty} without persons), {_count(len(data['annotations']), 'person')}, "
            f"{_count(len(cat['keypoints']), 'keypoint')} ({', '.join(cat['keypoints'])}), "
            f"{_count(len(cat['skeleton']), 'skeleton edge')}: wrote {out}; img_dir: {img_dir}")
