"""`slimpose quickstart`: the bundled photos (attributed, with their person boxes) are
drawn by the shipped weight, the seeded fixed-length training repeats its AP, and
``--budget`` says when it cut the training short."""

import json
import re
from pathlib import Path

import cv2
import pytest

from slimpose.cli import main as cli_main
from slimpose.engine.quickstart import ASSETS, PHOTO_BOXES, QUICKSTART_CONFIG

SHARED_COCO = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "coco-mini" / "annotations"
PHOTOS = sorted(ASSETS.glob("*.jpg"))
CC_BY_2 = "http://creativecommons.org/licenses/by/2.0/"
# Seconds, not minutes: 2 short epochs on a few synthetic images.
TINY = ["--num-train", "6", "--num-val", "3", "--epochs", "2",
        "--set", "data.batch_size=4", "train.max_iters_per_epoch=2", "data.val.limit=4", "data.workers=0"]


def attribution_rows() -> dict[str, list[str]]:
    """File name -> the cells of its row in ATTRIBUTION.md's table."""
    rows = {}
    for line in (ASSETS / "ATTRIBUTION.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].endswith(".jpg"):
            rows[cells[0]] = cells
    return rows


def test_every_photo_is_small_attributed_and_has_person_boxes():
    assert 3 <= len(PHOTOS) <= 4
    rows = attribution_rows()
    boxes = json.loads(PHOTO_BOXES.read_text())
    assert set(rows) == {p.name for p in PHOTOS}
    for photo in PHOTOS:
        image = cv2.imread(str(photo))
        h, w = image.shape[:2]
        assert max(h, w) <= 640 and photo.stat().st_size <= 120_000, photo.name
        name, coco_id, _, flickr, licence = rows[photo.name]
        assert coco_id.isdigit() and re.fullmatch(r"http://farm\d+\.staticflickr\.com/\S+\.jpg", flickr)
        assert licence.startswith("CC BY 2.0") and CC_BY_2 in licence
        mine = [b["bbox"] for b in boxes if b["image_id"] == photo.name]
        assert 1 <= len(mine) <= 3, photo.name
        for x, y, bw, bh in mine:
            assert 0 <= x and 0 <= y and bw > 0 and bh > 0 and x + bw <= w and y + bh <= h, photo.name


def test_attribution_matches_the_coco_annotations():
    """Each photo's id, Flickr URL and licence as the COCO annotation file gives them."""
    if not SHARED_COCO.is_dir():
        pytest.skip("needs ../shared/data/coco-mini")
    for name, coco_id, coco_file, flickr, _ in attribution_rows().values():
        split = coco_file.split("/")[0]
        data = json.loads((SHARED_COCO / f"person_keypoints_{split}.json").read_text())
        info = next(i for i in data["images"] if i["id"] == int(coco_id))
        licence = next(entry for entry in data["licenses"] if entry["id"] == info["license"])
        assert info["license"] == 4 and licence["url"] == CC_BY_2, name
        assert info["flickr_url"] == flickr and coco_file.endswith(info["file_name"]), name


def quickstart(out: Path, *extra: str) -> dict:
    assert cli_main(["quickstart", "--out", str(out), *TINY, *extra]) == 0
    return json.loads((out / "metrics.json").read_text())


def untimed(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in ("minutes", "eval_seconds")}


def test_quickstart_draws_the_photos_and_repeats_its_ap(tmp_path, capsys):
    first = quickstart(tmp_path / "a")
    printed = capsys.readouterr().out
    for photo in PHOTOS:
        assert (tmp_path / "a" / "photos" / f"{photo.name}_pose.jpg").is_file()
    assert "the package ships no person detector" in printed and "lpn_50_lsp_192x144" in printed
    assert f"photos drawn by lpn_50_lsp_192x144: {tmp_path / 'a' / 'photos'}" in printed
    assert f"metrics: {tmp_path / 'a' / 'metrics.json'}; predictions: {tmp_path / 'a' / 'predictions.png'}" in printed
    assert "4 iterations of batch 4, seed 0" in printed and "--budget" not in printed
    assert first["stopped_by_budget"] is False
    second = quickstart(tmp_path / "b")
    assert untimed(first) == untimed(second) and "AP" in untimed(first)
    predictions = [json.loads((tmp_path / run / "train" / "val_predictions" / "results_keypoints.json").read_text())
                   for run in "ab"]
    assert predictions[0] == predictions[1]


def test_budget_says_it_cut_training_short(tmp_path, capsys):
    metrics = quickstart(tmp_path / "qs", "--budget", "0.0001")
    printed = capsys.readouterr().out
    assert metrics["stopped_by_budget"] is True
    line = next(line for line in printed.splitlines() if line.startswith("--budget"))
    assert line == "--budget 0.0001 min stopped training in epoch 1 of 2: this AP is not the repeatable figure " \
                   "(run without --budget for that)"


@pytest.mark.parametrize("budget", ["0", "-1", "nan", "inf"])
def test_bad_budget_is_one_line(tmp_path, capsys, budget):
    assert cli_main(["quickstart", "--out", str(tmp_path / "qs"), "--budget", budget]) == 2
    err = capsys.readouterr().err
    assert err == f"slimpose quickstart: error: --budget must be a number of minutes above 0, got {budget}\n"
    assert not (tmp_path / "qs").exists()


def test_quickstart_training_has_a_fixed_length():
    # The AP repeats from run to run only if no wall-clock budget cuts the training short
    # by default (--budget MINUTES sets one); ~500 iterations take ~3 minutes on 2 cores.
    assert "max_minutes" not in QUICKSTART_CONFIG["train"]
    assert QUICKSTART_CONFIG["train"]["epochs"] == 16 and QUICKSTART_CONFIG["data"]["batch_size"] == 32
